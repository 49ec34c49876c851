"""How far to trust each finding's score: what the model card says was validated, per finding.

A score on the Review page is only as good as the evidence behind it. The card of a model trained
with ``python -m train cross-validate`` + ``calibrate`` holds, per finding, the out-of-fold AUC
with its 95% CI (``metrics["cv_seen"]``), the calibration and the operating point
(``calibration``), and, for the recipe, the AUC on findings held out of training altogether
(``metrics["cv_held_out"]``, the genuinely zero-shot figure). This module reads them into one
typed record per finding, so the table, the discordance rule and every export use the same facts:

- validated: the card holds an AUC for the finding; a name the card lacks is "not validated";
- reliable: validated and the CI's lower end is above 0.5 (a CI that includes 0.5 is "not reliable");
- the call: positive at or above the finding's operating point; without one, at or above the
  fallback threshold the user chose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from lrclr.model.calibration import Calibration, OperatingPoint

SEEN_EVALUATION, HELD_OUT_EVALUATION = "cv_seen", "cv_held_out"
CHANCE_AUC = 0.5


@dataclass(frozen=True)
class FindingReliability:
    finding: str
    validated: bool  # the card holds a cross-validated AUC for this finding
    auc: float | None
    ci_low: float | None
    ci_high: float | None
    n_positive: int | None
    calibrated: bool
    operating_point: OperatingPoint | None
    zero_shot: bool  # the AUC comes from a run that never saw this finding (held out)

    @property
    def reliable(self) -> bool:
        return self.validated and self.ci_low is not None and self.ci_low > CHANCE_AUC

    @property
    def label(self) -> str:
        """What the table says about the evidence: short, plain words."""
        if not self.validated:
            return "not validated"
        return "reliable" if self.reliable else "not reliable (CI includes 0.5)"

    def threshold(self, fallback: float) -> float:
        return self.operating_point.threshold if self.operating_point is not None else fallback

    def called_positive(self, probability: float, fallback: float) -> bool:
        return probability >= self.threshold(fallback)


@dataclass(frozen=True)
class EvidenceSummary:
    """The card's headline evidence, for captions: where the figures come from."""

    description: str  # e.g. "5-fold cross-validation over 421 NIH images"
    macro_auc: float | None
    macro_ci: tuple[float, float] | None
    held_out_findings: tuple[str, ...]
    held_out_macro: float | None
    held_out_ci: tuple[float, float] | None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _evaluation(card: Mapping[str, Any], key: str) -> dict:
    entry = (card.get("metrics") or {}).get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("result"), dict) else {}


def _per_finding(entry: dict) -> dict[str, dict]:
    return {str(f.get("finding")): f for f in entry.get("result", {}).get("findings") or [] if isinstance(f, dict)}


def finding_reliability(card: Mapping[str, Any], findings: Sequence[str]) -> dict[str, FindingReliability]:
    """One record per finding from the model card (see the module docstring)."""
    calibration = Calibration.from_card(card)
    seen = _per_finding(_evaluation(card, SEEN_EVALUATION))
    held_out_entry = _evaluation(card, HELD_OUT_EVALUATION)
    held_out = _per_finding(held_out_entry)
    out = {}
    for finding in findings:
        # The held-out run measured this recipe on findings it never saw; for the bundled model
        # (which did see them) the seen figure is the one that describes it.
        item, zero_shot = (seen[finding], False) if finding in seen else (held_out.get(finding), finding in held_out)
        auc = _number(item.get("auc")) if item else None
        fit = calibration.findings.get(finding)
        out[finding] = FindingReliability(
            finding, auc is not None, auc, _number(item.get("ci_low")) if item else None,
            _number(item.get("ci_high")) if item else None,
            int(item["n_positive"]) if item and isinstance(item.get("n_positive"), int) else None,
            fit is not None, fit.operating_point if fit is not None else None, zero_shot,
        )
    return out


def evidence_summary(card: Mapping[str, Any]) -> EvidenceSummary | None:
    """The card's cross-validation headline, or None when the card holds none."""
    seen = _evaluation(card, SEEN_EVALUATION)
    if not seen:
        return None
    macro = seen["result"].get("macro") or {}
    dataset = seen.get("dataset") or {}
    spec = dataset.get("spec") or {}
    # The title names a partial run ("folds 0 of a 5-fold cross-validation ..."); the split alone would not.
    scope = str(seen.get("title") or dataset.get("split") or "cross-validation").split(" (findings")[0]
    description = (f"{scope}, out of fold over {dataset.get('n_samples', '?')} "
                   f"{str(spec.get('kind', '')).upper()} images").strip()
    held = _evaluation(card, HELD_OUT_EVALUATION)
    held_macro = held.get("result", {}).get("macro") or {}

    def interval(values: dict) -> tuple[float, float] | None:
        low, high = _number(values.get("ci_low")), _number(values.get("ci_high"))
        return (low, high) if low is not None and high is not None else None

    return EvidenceSummary(
        description, _number(macro.get("auc")), interval(macro),
        tuple(str(f) for f in held_macro.get("findings") or ()), _number(held_macro.get("auc")), interval(held_macro),
    )


def trained_on_whole_sample(card: Mapping[str, Any]) -> bool:
    """Did this model train on every image of its NIH dataset (no held-out split)? Then the demo
    gallery's NIH cases, drawn from that sample, were training images for it."""
    data = card.get("training_data") or {}
    spec = data.get("spec") or {}
    fractions = data.get("split_fractions") or []
    return spec.get("kind") == "nih" and bool(fractions) and float(fractions[0]) >= 1.0
