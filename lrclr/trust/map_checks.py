"""Does a map depend on the text that asked for it? One definition for the app and the benchmarks.

Two measures, both Pearson correlations over the case's content cells (letterbox padding left out):

- map specificity of a model on an image: the mean pairwise correlation of the maps of a fixed set
  of different finding phrases (``REFERENCE_PHRASES``). 1 means every phrase gets the same map
  (the map ignores the text), 0 that the maps are unrelated. ``python -m train cross-validate``
  reports it for the map the app draws and for the word-patch similarity map.
- for one phrase on the Review page: the correlation of its map with the case's mean map over the
  reference phrases. Above ``NOT_SPECIFIC_CORRELATION`` the page says the map does not depend on
  the phrase here instead of painting it.

A constant map has no correlation with anything; it counts as 1 (it says as little about the
phrase as an identical map).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

# Different findings, sides and zones: maps that ignore the text cannot tell these apart.
REFERENCE_PHRASES: tuple[str, ...] = (
    "left pleural effusion", "right pleural effusion", "enlarged cardiac silhouette",
    "right upper lobe nodule", "left lower lobe consolidation", "right pneumothorax",
    "left upper lobe mass", "pulmonary edema", "hiatal hernia", "right lower lobe atelectasis",
)
# A phrase's map this close to the case's mean reference map is the case's map, not the phrase's.
NOT_SPECIFIC_CORRELATION = 0.9


def peak_cells(grid_map: np.ndarray, candidates: np.ndarray) -> list[tuple[int, int]]:
    """(row, col) of the highest candidate cell(s) of a map: where the map points.

    One rule for the pointing game (``train evaluate``) and the Model page: the peak is taken on
    the model's grid and placed at its cell's centre (``Letterbox.cell_centre``), never on the
    bilinear upsampling, where an interior cell's peak is blended with its neighbours and border
    cells keep their value along the clamped margin, so a nearly flat map points at the edge.
    """
    values = np.where(np.asarray(candidates, dtype=bool), np.asarray(grid_map, dtype=np.float64), -np.inf)
    return [(int(row), int(col)) for row, col in np.argwhere(values == values.max())]


def correlation(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Pearson correlation of two maps on the ``valid`` cells; 1 when either is constant there."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if valid is not None:
        keep = np.asarray(valid, dtype=bool).reshape(-1)
        a, b = a[keep], b[keep]
    if a.size < 2 or a.std() < 1e-12 or b.std() < 1e-12:
        return 1.0
    return float(np.corrcoef(a, b)[0, 1])


def mean_pairwise_correlation(maps: Sequence[np.ndarray], valid: np.ndarray | None = None) -> float:
    """Mean correlation over all pairs of ``maps``: the map specificity of one image."""
    values = [correlation(a, b, valid) for a, b in combinations(maps, 2)]
    return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class PhraseSpecificity:
    correlation_with_reference: float  # with the case's mean map over REFERENCE_PHRASES
    specific: bool  # False: the map is (nearly) the case's map whatever the phrase
    threshold: float = NOT_SPECIFIC_CORRELATION


def phrase_specificity(phrase_map: np.ndarray, reference_maps: Sequence[np.ndarray],
                       valid: np.ndarray | None = None) -> PhraseSpecificity:
    reference = np.mean(np.stack([np.asarray(m, dtype=np.float64) for m in reference_maps]), axis=0)
    value = correlation(phrase_map, reference, valid)
    return PhraseSpecificity(value, value <= NOT_SPECIFIC_CORRELATION)


def reference_maps(model, case) -> list[np.ndarray]:
    """The maps the app draws for each reference phrase on ``case`` (a ``CaseImage``)."""
    from lrclr.trust.case_findings import phrase_map

    return [phrase_map(model.explain(case, phrase, findings=())) for phrase in REFERENCE_PHRASES]
