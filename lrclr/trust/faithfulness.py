"""The deletion test: do the cells a map ranks highest matter to the scores more than random cells?

A heat map is a claim that certain cells drive the model's output. It can be checked on the case
itself (RISE/deletion-style): blank the map's top-k cells (fill them with the image's median
intensity), score again, and compare each finding's drop with the drop from blanking k random
content cells (a few repeats, seeded by the image so the numbers are reproducible). A map whose
cells matter more than random ones earns some trust; one whose cells matter no more than random
ones is decoration. Both numbers are returned, never only the flattering one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lrclr.model.letterbox import Letterbox

DEFAULT_REPEATS = 5


@dataclass(frozen=True)
class FindingDeletion:
    finding: str
    score: float  # on the intact image (calibrated where the card calibrates it, as the app shows)
    top_cells_drop: float  # score - score with the map's top-k cells blanked
    random_drop: float  # mean over repeats of score - score with k random content cells blanked
    random_drops: tuple[float, ...]


@dataclass(frozen=True)
class DeletionTest:
    k: int
    repeats: int
    top_cells: tuple[tuple[int, int], ...]  # (row, col) of the blanked top cells
    findings: tuple[FindingDeletion, ...]
    fill: str = "the image's median intensity"

    def for_finding(self, finding: str) -> FindingDeletion:
        return next(item for item in self.findings if item.finding == finding)

    @property
    def map_earns_it(self) -> bool:
        """The top cells move the scores more than random cells, on average over the findings."""
        top = np.mean([abs(f.top_cells_drop) for f in self.findings])
        random = np.mean([abs(f.random_drop) for f in self.findings])
        return bool(top > random)


def top_cells(grid_map: np.ndarray, valid: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The ``k`` highest cells of the map among the content cells, highest first."""
    values = np.where(np.asarray(valid, dtype=bool), np.asarray(grid_map, dtype=np.float64), -np.inf).ravel()
    order = np.argsort(-values, kind="stable")[: min(k, int(np.isfinite(values).sum()))]
    cols = grid_map.shape[1]
    return [(int(i) // cols, int(i) % cols) for i in order]


def blank_cells(pixels: np.ndarray, cells: Sequence[tuple[int, int]], letterbox: Letterbox,
                grid: tuple[int, int], fill: float) -> np.ndarray:
    """A copy of ``pixels`` (original size) with each cell's box filled with ``fill``."""
    out = np.array(pixels, dtype=np.float32, copy=True)
    height, width = out.shape
    for row, col in cells:
        x0, y0, x1, y1 = letterbox.cell_box(row, col, grid)
        c0, c1 = int(np.floor(x0)), int(np.ceil(x1))
        r0, r1 = int(np.floor(y0)), int(np.ceil(y1))
        out[max(0, r0):min(height, r1), max(0, c0):min(width, c1)] = fill
    return out


def deletion_test(model, pixels: np.ndarray, grid_map: np.ndarray, valid: np.ndarray, letterbox: Letterbox,
                  findings: Sequence[str], k: int, repeats: int = DEFAULT_REPEATS) -> DeletionTest:
    """Blank the top-``k`` cells of ``grid_map`` and ``repeats`` sets of k random other content
    cells, and score every version of the image in one batch."""
    if k < 1:
        raise ValueError("the deletion test needs k >= 1 cells")
    grid = tuple(grid_map.shape)
    valid = np.asarray(valid, dtype=bool).reshape(grid)
    chosen = top_cells(grid_map, valid, k)
    others = [(int(r), int(c)) for r, c in np.argwhere(valid) if (int(r), int(c)) not in set(chosen)]
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.float32).tobytes()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    fill = float(np.median(pixels))
    random_sets = [[others[i] for i in rng.choice(len(others), size=min(len(chosen), len(others)), replace=False)]
                   for _ in range(repeats)] if others else []
    images = [np.asarray(pixels, dtype=np.float32), blank_cells(pixels, chosen, letterbox, grid, fill)]
    images += [blank_cells(pixels, cells, letterbox, grid, fill) for cells in random_sets]
    scores = model.zero_shot(images, list(findings)).probabilities.astype(np.float64)
    intact, top, random = scores[0], scores[1], scores[2:]
    results = []
    for j, finding in enumerate(findings):
        drops = tuple(float(intact[j] - row[j]) for row in random)
        results.append(FindingDeletion(finding, float(intact[j]), float(intact[j] - top[j]),
                                       float(np.mean(drops)) if drops else float("nan"), drops))
    return DeletionTest(len(chosen), len(random_sets), tuple(chosen), tuple(results))
