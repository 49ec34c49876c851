"""What the Review page computes beyond the model itself, as pure functions the tests can call.

* Findings beside the report: the zero-shot score of each finding next to what the report states
  (the rule-based labeler) and the evidence the model card holds for it (``lrclr.trust.reliability``), with the
  discordant ones marked, because a radiologist reviewing a model looks first where the model and
  the report disagree. The model "calls" a finding at the card's operating point for it; only a
  finding without one falls back to the threshold the user set.
* Phrase grounding: one map for a free-text phrase, the mean over its words.
* The analysis export: everything shown, keyed by hashes, never by names or patient identifiers.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from lrclr.model.explain import Explanation
from lrclr.reports.labeler import NEGATIVE, POSITIVE, UNCERTAIN, label_report
from lrclr.trust.reliability import FindingReliability, evidence_summary, finding_reliability

DEFAULT_DISCORDANCE_THRESHOLD = 0.5
REPORT_STATUS_TEXT = {POSITIVE: "present", NEGATIVE: "absent", UNCERTAIN: "uncertain"}
NOT_MENTIONED = "not mentioned"
NO_REPORT = "no report"


@dataclass(frozen=True)
class FindingRow:
    finding: str
    probability: float  # calibrated where the card calibrates the finding
    report_says: str  # "present", "absent", "uncertain", "not mentioned" or "no report"
    discordance: str  # why the model and the report disagree; "" when they do not
    calibrated: bool = False
    raw_probability: float | None = None
    threshold: float = DEFAULT_DISCORDANCE_THRESHOLD  # the operating point, else the fallback threshold
    threshold_source: str = "fallback"  # "operating point" (from the card) or "fallback" (the user's)
    called_positive: bool = False  # probability >= threshold
    auc: float | None = None  # the card's cross-validated AUC for the finding
    auc_ci: tuple[float, float] | None = None
    evidence: str = "not validated"  # "reliable", "not reliable (CI includes 0.5)" or "not validated"
    reliable: bool = False


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def upload_case_id(data: bytes) -> str:
    """An uploaded image's case id: its content's hash, never its file name (Review, Annotate and
    Batch's hand-over all name a case by this one rule)."""
    return f"upload-{sha256_hex(data)[:12]}"


def distinct_labels(texts: list[str]) -> list[str]:
    """Labels that look like ``texts`` but are all different, for widgets that identify an option by
    its label (Streamlit's pills do): the k-th repeat of a word gets k zero-width spaces appended,
    so clicking the second "is" of a report chooses that "is" and not the first."""
    seen: dict[str, int] = {}
    labels = []
    for text in texts:
        repeat = seen.get(text, 0)
        seen[text] = repeat + 1
        labels.append(text + "\u200b" * repeat)
    return labels


def finding_rows(explanation: Explanation, threshold: float = DEFAULT_DISCORDANCE_THRESHOLD,
                 card: dict | None = None) -> list[FindingRow]:
    """One row per scored finding, in the model's order.

    The model calls a finding positive at or above its operating point from ``card`` (the model
    card), or at or above ``threshold`` where the card has none. Discordant: the report states a
    finding the model does not call, or denies one it calls. A hedged or unmentioned finding is
    never discordant: the report does not commit, so there is nothing to disagree with.
    """
    has_report = bool(explanation.report.strip())
    stated = label_report(explanation.report).labels if has_report else {}
    evidence = finding_reliability(card or {}, [score.finding for score in explanation.findings])
    rows = []
    for score in explanation.findings:
        status = stated.get(score.finding)
        says = REPORT_STATUS_TEXT[status] if status is not None else (NOT_MENTIONED if has_report else NO_REPORT)
        facts: FindingReliability = evidence[score.finding]
        cut = facts.threshold(threshold)
        called = score.probability >= cut
        discordance = ""
        if status == POSITIVE and not called:
            discordance = "report states it; model scores it low"
        elif status == NEGATIVE and called:
            discordance = "report denies it; model scores it high"
        rows.append(FindingRow(
            score.finding, score.probability, says, discordance, score.calibrated, score.raw_probability, cut,
            "operating point" if facts.operating_point is not None else "fallback", called, facts.auc,
            (facts.ci_low, facts.ci_high) if facts.ci_low is not None and facts.ci_high is not None else None,
            facts.label, facts.reliable))
    return rows


def phrase_map(explanation: Explanation) -> np.ndarray:
    """(rows, cols) map for a whole phrase: the mean of its words' maps.

    With regions, a word's map is its attention placed on the regions' cells; without (the
    global-only baseline) it is the word's cosine similarity with every patch.
    """
    if not explanation.words:
        return np.zeros(explanation.grid, dtype=np.float32)
    return np.mean([word_map(explanation, w.index) for w in explanation.words], axis=0).astype(np.float32)


def word_map(explanation: Explanation, word_index: int) -> np.ndarray:
    """The grid map the heatmap shows for one word (see ``phrase_map``)."""
    if explanation.regions:
        return explanation.attention_map(word_index)
    return np.asarray(explanation.words[word_index].patch_similarity, dtype=np.float32)


def analysis_record(explanation: Explanation, image_bytes: bytes, case_id: str, model_card: dict,
                    threshold: float = DEFAULT_DISCORDANCE_THRESHOLD, checks: dict | None = None,
                    include_report: bool = False) -> dict:
    """The JSON export of one review. No file names, DICOM headers or patient identifiers: the case
    is named by its id (a demo id, or the upload's hash) and the image by its SHA-256. The report's
    text (real reports carry names and dates), and so each word's text, is in it only with
    ``include_report``; otherwise the report is its SHA-256 and the words their positions.

    ``checks`` holds what else the page showed, JSON-ready (the input gate, the map's scale and
    specificity, counterfactual probes, the deletion test); the card figures the findings table
    used (cross-validated AUCs, calibration, operating points) come with every row."""
    summary = evidence_summary(model_card)
    return {
        "case_id": case_id,
        "image_sha256": sha256_hex(image_bytes),
        "report_sha256": sha256_hex(explanation.report),
        "model_id": explanation.model_id,
        "model_code_version": model_card.get("code_version"),
        "discordance_threshold": threshold,
        "findings_vs_report": [asdict(row) for row in finding_rows(explanation, threshold, model_card)],
        "evidence": asdict(summary) if summary is not None else None,
        "calibration_fitted_on": (model_card.get("calibration") or {}).get("fitted_on"),
        "checks": checks or {},
        "report_included": include_report,
        "explanation": explanation.to_dict() if include_report else _without_report_text(explanation.to_dict()),
    }


def overlay_export_lines(caption: str, case_id: str, model_id: str, made: datetime.datetime) -> list[str]:
    """The footer of the exported overlay PNG: what the picture shows (the viewer's caption, which
    names the word or phrase and the map's values), whose it is, when, and what it is not."""
    return [f"Shows: {caption}.", f"Case {case_id} · model {model_id} · {made:%Y-%m-%d %H:%M} UTC",
            "Research software, not a medical device."]


def _without_report_text(explained: dict) -> dict:
    explained["report"] = None
    for word in explained["words"]:
        word["text"] = None
    for region in explained["regions"]:
        for word in region["top_words"]:
            word["text"] = None
    return explained
