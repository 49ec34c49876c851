"""Localization measures: do a model's word maps point at the finding a mask (or boxes) marks?

The pointing game (is the centre of the map's peak cell, in original pixels, inside the mask; see
``peak_heatmap`` for why the peak is not taken on the bilinear upsampling), its chance level (a
map peaking at a random content cell) and whether any cell could hit at all, and the IoU of the
union of the top-N cells' boxes with the mask. The same N for both map kinds (LRCLR region
attention, word-patch similarity) keeps the comparison fair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lrclr.model.explain import Explanation
from lrclr.trust.map_checks import peak_cells
from lrclr.model.letterbox import Letterbox
from lrclr.findings import finding_phrase
from train.evaluation.metrics import (
    LocalizationScore, boxes_to_mask, grown_mask, iou, pointing_game_hit,
)
from train.training.localization import ground_truth
from train.datasets.sample import Sample


TOP_REGIONS = 3

ATTENTION, SIMILARITY = "region_attention", "patch_similarity"


@dataclass(frozen=True)

class LocalizationCase:
    image_id: str
    finding: str
    map_kind: str
    hit: bool
    iou: float
    # Could any map hit? On a coarse grid the peak sits at a cell centre, and a mask thinner than a
    # cell (a plate of atelectasis, a nodule) may contain no cell centre at all.
    reachable: bool = True
    # The hit rate of a map peaking at a random content cell: the pointing game's chance level.
    chance: float = float("nan")


def localize_sample(model, sample: Sample, top_regions: int = TOP_REGIONS,
                    tolerance_px: float = 0.0) -> list[LocalizationCase]:
    truth = ground_truth(sample)
    if not truth:
        return []
    case = model.encode_case(sample.pixels)  # once per image, reused for every finding
    results = []
    for finding, mask in truth.items():
        explanation = model.explain(case, finding_phrase(finding), findings=())
        hits = content_cell_hits(mask, case.letterbox, explanation.grid, top_regions, tolerance_px)
        reachable, chance = bool(hits.any()), float(hits.mean())
        for kind, grid_map, candidates, boxes in word_maps(explanation, case.letterbox, top_regions):
            peak = peak_heatmap(grid_map, candidates, case.letterbox)
            hit = pointing_game_hit(peak, mask, tolerance_px)
            results.append(LocalizationCase(sample.image_id, finding, kind, hit,
                                            iou(boxes_to_mask(boxes, mask.shape), mask), reachable, chance))
    return results


def content_cell_hits(mask: np.ndarray, letterbox: Letterbox, grid: tuple[int, int], top: int,
                      tolerance_px: float = 0.0) -> np.ndarray:
    """For each content cell, would a map peaking there hit? Any: the pointing game's ceiling on
    this grid; their mean: its chance level (a peak at a random content cell).

    A single-cell peak hits when its centre pixel lies in the mask (grown by the tolerance, as
    ``pointing_game_hit`` grows it), so it is enough to look up each content cell's centre once.
    """
    mask = grown_mask(mask, tolerance_px)
    return np.array([bool(mask[letterbox.cell_centre(int(row), int(col), grid)])
                     for row, col in np.argwhere(content_cells(letterbox, grid, top))])


def pointing_game_reachable(mask: np.ndarray, letterbox: Letterbox, grid: tuple[int, int], top: int,
                            tolerance_px: float = 0.0) -> bool:
    """Would a map peaking at the best content cell hit? (The ceiling of the pointing game here.)"""
    return bool(content_cell_hits(mask, letterbox, grid, top, tolerance_px).any())


def word_maps(explanation: Explanation, letterbox: Letterbox, top: int):
    """[(map kind, (rows, cols) map averaged over the phrase's words, cells its peak may lie in,
    top-N boxes in original pixels)]."""
    words = explanation.words
    if not words:
        return []
    similarity = np.mean([w.patch_similarity for w in words], axis=0)
    content = content_cells(letterbox, similarity.shape, top)
    maps = [(SIMILARITY, similarity, content, top_cell_boxes(similarity, content, letterbox, top))]
    if explanation.regions and words[0].region_attention is not None:
        attention = np.mean([w.region_attention for w in words], axis=0)  # over regions, by rank
        grid_map = np.mean([explanation.attention_map(i) for i in range(len(words))], axis=0)
        selected = np.zeros(explanation.grid, dtype=bool)
        selected[tuple(np.array([r.cell for r in explanation.regions]).T)] = True
        order = np.argsort(-attention, kind="stable")[:top]
        maps.insert(0, (ATTENTION, grid_map, selected, [explanation.regions[i].box for i in order]))
    return maps


def content_cells(letterbox: Letterbox, grid: tuple[int, int], top: int) -> np.ndarray:
    """Cells showing image content, by the rule region selection uses (``Letterbox.content_cells``)."""
    return letterbox.content_cells(grid, top)


def top_cell_boxes(grid_map: np.ndarray, candidates: np.ndarray, letterbox: Letterbox,
                   top: int) -> list[tuple[float, float, float, float]]:
    """Original-pixel boxes of the ``top`` highest candidate cells."""
    grid = grid_map.shape
    order = np.argsort(-np.where(candidates, grid_map, -np.inf).ravel(), kind="stable")
    return [letterbox.cell_box(int(i) // grid[1], int(i) % grid[1], grid) for i in order[: min(top, candidates.sum())]]


def peak_heatmap(grid_map: np.ndarray, candidates: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Original-pixel map that is 1 at the centre of the highest candidate cell(s), 0 elsewhere
    (the peak rule is ``lrclr.trust.map_checks.peak_cells``, which the Model page uses too)."""
    width, height = letterbox.original_size
    heat = np.zeros((height, width), dtype=np.float32)
    for row, col in peak_cells(grid_map, candidates):
        heat[letterbox.cell_centre(row, col, grid_map.shape)] = 1.0
    return heat


def summarise_localization(cases: Sequence[LocalizationCase]) -> list[LocalizationScore]:
    """Per (finding, map kind), then "all" per map kind pooling every (image, finding) pair."""
    groups: dict[tuple[str, str], list[LocalizationCase]] = {}
    for case in cases:
        groups.setdefault((case.finding, case.map_kind), []).append(case)
        groups.setdefault(("all", case.map_kind), []).append(case)
    scores = []
    for (finding, kind), items in sorted(groups.items(), key=lambda kv: (kv[0][0] == "all", kv[0])):
        scores.append(LocalizationScore(finding, kind, len(items), float(np.mean([c.hit for c in items])),
                                        float(np.nanmean([c.iou for c in items])),
                                        float(np.mean([c.reachable for c in items])), _finite_mean(c.chance for c in items)))
    return scores


def _finite_mean(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
