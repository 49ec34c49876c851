"""Counterfactual probes: does the score and the map move the way the words say they should?

For a phrase (a typed phrase, or a finding's phrase), two edits whose meaning a radiologist knows:

- negation: "left pleural effusion" -> "no left pleural effusion". The image's similarity to the
  negated phrase should differ from its similarity to the phrase (lower where the finding is
  present); a model that ignores "no" gives the same number and the same map.
- laterality: "left" <-> "right" (``lrclr.reports.laterality``). The map's mass should move to the other
  side of the image; a model that ignores side words paints the same map.

Scores are ``LRCLRModel.phrase_logits`` (the image's similarity to the phrase itself, in logit
units); maps are the ones the app draws (``lrclr.trust.case_findings.phrase_map``). The patient's left is the
image's right on a PA/AP film, so "share on the patient's left" is the map's mass on the right half
of the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lrclr.reports.laterality import swap_laterality
from lrclr.trust.map_checks import correlation
from lrclr.trust.case_findings import phrase_map

_LEADING_NEGATION = re.compile(r"^\s*(?:no|without|there is no)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class PhraseProbe:
    phrase: str
    similarity: float  # scale x similarity of the image with the phrase (logit units)
    grid_map: np.ndarray  # the map the app draws for the phrase
    patient_left_share: float  # share of the map's mass on the patient's left (image right)


@dataclass(frozen=True)
class CounterfactualEdit:
    kind: str  # "negated" or "sides swapped"
    probe: PhraseProbe
    similarity_change: float  # edited minus original
    map_correlation: float  # with the original map; 1 = the same map
    left_share_change: float  # edited minus original share on the patient's left


@dataclass(frozen=True)
class Counterfactuals:
    original: PhraseProbe
    edits: tuple[CounterfactualEdit, ...]  # negated; sides swapped when the phrase names a side

    def to_dict(self) -> dict:
        def probe(p: PhraseProbe) -> dict:
            return {"phrase": p.phrase, "similarity": p.similarity, "patient_left_share": p.patient_left_share}

        return {"original": probe(self.original),
                "edits": [{"kind": e.kind, **probe(e.probe), "similarity_change": e.similarity_change,
                           "map_correlation": e.map_correlation, "left_share_change": e.left_share_change}
                          for e in self.edits]}


def negated(phrase: str) -> str:
    """ "left effusion" -> "no left effusion"; an already negated phrase loses its negation."""
    stripped = _LEADING_NEGATION.sub("", phrase, count=1)
    return stripped.strip() if stripped != phrase else f"no {phrase.strip()}"


def patient_left_share(grid_map: np.ndarray, valid: np.ndarray) -> float:
    """Share of the (non-negative part of the) map on the image's right half, the patient's left."""
    values = np.where(np.asarray(valid, dtype=bool), np.asarray(grid_map, dtype=np.float64), np.nan)
    values = values - np.nanmin(values)
    total = np.nansum(values)
    if not np.isfinite(total) or total <= 0:
        return 0.5
    cols = values.shape[1]
    right = np.nansum(values[:, cols // 2 + cols % 2 :]) + (np.nansum(values[:, cols // 2]) / 2 if cols % 2 else 0)
    return float(right / total)


def probe_phrases(model, case, phrase: str) -> Counterfactuals:
    """The phrase, its negation and (when it names a side) its mirror, scored and mapped on ``case``."""
    phrase = phrase.strip()
    if not phrase:
        raise ValueError("a counterfactual probe needs a phrase")
    variants = [("original", phrase), ("negated", negated(phrase))]
    mirrored = swap_laterality(phrase)
    if mirrored != phrase:
        variants.append(("sides swapped", mirrored))
    similarities = model.phrase_logits(case.features, [text for _, text in variants])[0]
    valid = case.features.valid[0].cpu().numpy().reshape(case.features.grid)
    probes = []
    for (_, text), similarity in zip(variants, similarities):
        grid_map = phrase_map(model.explain(case, text, findings=()))
        probes.append(PhraseProbe(text, float(similarity), grid_map, patient_left_share(grid_map, valid)))
    original = probes[0]
    edits = tuple(
        CounterfactualEdit(kind, probe, probe.similarity - original.similarity,
                           correlation(probe.grid_map, original.grid_map, valid),
                           probe.patient_left_share - original.patient_left_share)
        for (kind, _), probe in zip(variants[1:], probes[1:]))
    return Counterfactuals(original, edits)
