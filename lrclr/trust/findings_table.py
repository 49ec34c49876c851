"""The findings table as the reader sees it: its cells, its order and its legend, in one place.

The Review page's table and the case report's table are both built here from
``lrclr.trust.case_findings.finding_rows``, so a mark, a rounding or a sort order cannot differ between the
screen and a printed page.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lrclr.trust.case_findings import FindingRow
from lrclr.trust.reliability import evidence_summary

FALLBACK_MARK = "†"  # called against the user's fallback threshold: the card has no operating point
UNRELIABLE_MARK = "✗"  # the AUC's 95% CI includes 0.5
DISCORDANT_MARK = "≠"  # the model and the report disagree
COLUMNS = ("finding", "probability", "called", "AUC (95% CI)", "report")


def called_text(row: FindingRow) -> str:
    """'yes ≥0.31' / 'no <0.31'; † when the threshold is the user's fallback, not an operating point."""
    mark = "" if row.threshold_source == "operating point" else FALLBACK_MARK
    return f"yes ≥{row.threshold:.2f}{mark}" if row.called_positive else f"no <{row.threshold:.2f}{mark}"


def evidence_text(row: FindingRow) -> str:
    """'0.72 (0.64-0.80)', '✗ 0.55 (0.47-0.63)' (the CI includes 0.5) or 'not validated'; ', raw'
    where the probability is not calibrated. The column is narrow; the legend says what they mean."""
    raw = "" if row.calibrated else ", raw"
    if row.auc is None or row.auc_ci is None:
        return f"not validated{raw}"
    auc = f"{row.auc:.2f} ({row.auc_ci[0]:.2f}-{row.auc_ci[1]:.2f})"
    return f"{auc}{raw}" if row.reliable else f"{UNRELIABLE_MARK} {auc}{raw}"


def report_text(row: FindingRow) -> str:
    return row.report_says + (f" {DISCORDANT_MARK}" if row.discordance else "")


def findings_table(rows: Sequence[FindingRow]) -> pd.DataFrame:
    """One line per finding, highest probability first; ``probability`` stays a number (the screen
    formats it with three decimals, as ``probability_text`` does)."""
    table = pd.DataFrame({
        "finding": [r.finding for r in rows],
        "probability": [r.probability for r in rows],
        "called": [called_text(r) for r in rows],
        "AUC (95% CI)": [evidence_text(r) for r in rows],
        "report": [report_text(r) for r in rows],
    }, columns=list(COLUMNS))
    return table.sort_values("probability", ascending=False, kind="stable")


def probability_text(probability: float) -> str:
    return f"{probability:.3f}"


def findings_legend(card: dict, rows: Sequence[FindingRow], has_report: bool) -> list[str]:
    """What the marks mean and where the evidence comes from, as sentences."""
    discordant = sum(bool(r.discordance) for r in rows)
    lines = [f"{discordant} discordant finding(s) between the model and the report (labeler), marked "
             f"{DISCORDANT_MARK}. Called: the probability against the finding's operating point; {FALLBACK_MARK}: "
             "the card has none, so the fallback threshold is used. AUC: cross-validated, with its 95% interval; "
             f"{UNRELIABLE_MARK}: not reliable, the interval includes 0.5 (chance); raw: an uncalibrated score."
             if has_report else "No report: nothing to compare the scores with."]
    summary = evidence_summary(card)
    if summary is None:
        lines.append("This model's card holds no cross-validated figures: every finding is not validated and "
                     "its score is the raw zero-shot similarity, not a calibrated probability.")
        return lines
    macro = f"{summary.macro_auc:.2f}" if summary.macro_auc is not None else "?"
    lines.append(f"AUCs, calibration and operating points: {summary.description} (the model card); macro AUC "
                 f"{macro}. Grey rows are not reliable.")
    if summary.held_out_findings and summary.held_out_macro is not None:
        lines.append(f"Findings the card does not list are 'not validated'. As a guide, a cross-validation with "
                     f"findings removed from training entirely ({', '.join(summary.held_out_findings)}) scored "
                     f"macro AUC {summary.held_out_macro:.2f} on them: genuinely zero-shot (its recipe is on the "
                     "Model page).")
    return lines
