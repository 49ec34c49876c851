"""The demo tour's steps, written from what the loaded model's card measured, not from hopes.

Every number a step quotes comes from the model card (cross-validation, calibration, the phantom
localization evaluation, map specificity); where the card lacks a measurement the step says so.
What a step claims the page will show (a greyed row, a map the page declines to paint) is what the
page does for the same facts. The texts are the project's own Markdown; no user text goes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from lrclr.trust.map_checks import NOT_SPECIFIC_CORRELATION
from lrclr.trust.reliability import SEEN_EVALUATION, evidence_summary, finding_reliability

REVIEW, MODEL = "review", "model"
PHANTOM_EVALUATION = "phantoms_tol15"


@dataclass(frozen=True)
class TourStep:
    title: str
    text: str  # the project's own Markdown
    page: str  # REVIEW or MODEL
    case_id: str | None = None  # a demo gallery case the step opens


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _map_specificity(card: Mapping[str, Any]) -> float | None:
    entry = (card.get("metrics") or {}).get(SEEN_EVALUATION) or {}
    return _number((entry.get("map_specificity") or {}).get("drawn"))


def _pointing(card: Mapping[str, Any]) -> tuple[float, float] | None:
    result = ((card.get("metrics") or {}).get(PHANTOM_EVALUATION) or {}).get("result") or {}
    for item in result.get("localization") or []:
        if item.get("finding") == "all" and item.get("map_kind") == "region_attention":
            hit, chance = _number(item.get("pointing_game")), _number(item.get("pointing_game_chance"))
            if hit is not None and chance is not None:
                return hit, chance
    return None


def _scores_step(card) -> TourStep:
    facts = finding_reliability(card, ["Cardiomegaly"])["Cardiomegaly"]
    if facts.validated:
        evidence = (f"Cardiomegaly's cross-validated AUC is {facts.auc:.2f} [{facts.ci_low:.2f}, {facts.ci_high:.2f}]: "
                    f"**{facts.label}**.")
    else:
        evidence = "This model's card validates no finding, so every row says *not validated*."
    return TourStep("Scores, and how far to trust them",
                    "Open the **Cardiomegaly (NIH)** case. In **Findings**, each row gives the probability, the "
                    f"finding's own operating point and the evidence behind it. {evidence} Grey rows are not "
                    "reliable; red rows are where the model and the report disagree.", REVIEW, "nih-01-cardiomegaly")


def _words_step(card) -> TourStep:
    specificity = _map_specificity(card)
    if specificity is None:
        measured = "This model's card holds no map-specificity measurement."
    elif specificity > NOT_SPECIFIC_CORRELATION:
        measured = (f"On the NIH sample the maps of ten different finding phrases correlate {specificity:.2f} on "
                    "average: they hardly depend on the words, and the page says so instead of painting them.")
    else:
        measured = (f"On the NIH sample the maps of ten different finding phrases correlate {specificity:.2f} on "
                    "average (1 would mean a map ignores its words). Where a word's map on this film is still the "
                    "film's map, not the word's, the page says so instead of painting it.")
    return TourStep("Where a report word looks",
                    "Open **Report words** and click *Heart*, then *enlarged*. The numbered boxes are the regions "
                    f"the model selected (1 = most significant); the bar chart's dotted line is a uniform spread. "
                    f"{measured}", REVIEW, "nih-01-cardiomegaly")


def _phantom_step(card) -> TourStep:
    pointing = _pointing(card)
    measured = (f"On held-out phantoms its attention peaks within 15 px of the finding in {pointing[0]:.0%} of cases, "
                f"against {pointing[1]:.0%} for a random cell." if pointing
                else "This model's card holds no phantom localization measurement.")
    return TourStep("Model map against ground truth",
                    "This phantom has exact masks. Type *cardiomegaly* in **Phrase**, then pick **Ground-truth mask "
                    f"(phantom)** under the viewer. {measured} Phantoms are synthetic: this says nothing about real "
                    "films.", REVIEW, "phantom-01-cardiomegaly-edema")


def tour_steps(card: Mapping[str, Any] | None) -> tuple[TourStep, ...]:
    card = card or {}
    summary = evidence_summary(card)
    if summary is None or summary.macro_auc is None:
        headline = "This model's card holds no cross-validated figures."
    else:
        headline = f"Cross-validated macro AUC {summary.macro_auc:.2f} ({summary.description}), learned from report labels."
        if summary.held_out_macro is not None:
            headline += (f" On findings removed from training entirely it scores {summary.held_out_macro:.2f}: "
                         "the genuinely zero-shot figure.")
    return (
        _scores_step(card),
        _words_step(card),
        _phantom_step(card),
        TourStep("Negate it, swap its side",
                 "Type *left pleural effusion* in **Phrase** and click **Probe: negate it and swap its side**. A model "
                 "that reads the words moves the similarity when the phrase is negated and the map when the side "
                 "changes; the table says how much, and a map correlation near 1 means nothing moved.",
                 REVIEW, "nih-02-effusion"),
        TourStep("Does the map matter?",
                 "In **Checks**, run the deletion test: it blanks the map's top cells and as many random ones, and "
                 "re-scores. Only a map whose cells move the scores more than random cells is evidence of where the "
                 "model looks. Below it, the input check says whether the image looks like a chest film at all.",
                 REVIEW, "nih-02-effusion"),
        TourStep("A real DICOM",
                 "A JPEG-compressed DICOM with sternotomy wires. Use **Display** to window it; the **DICOM header** "
                 "panel below the viewer hides patient identifiers unless you ask for them.", REVIEW, "dicom-01-jpeg"),
        TourStep("How good is the model?",
                 f"The **Model** page shows what the loaded model was trained on and its per-finding AUC with 95% "
                 f"intervals against the global-only baseline. {headline}", MODEL),
    )
