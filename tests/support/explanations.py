"""Explanations made by hand, for testing what the pages compute from them without a model."""

from __future__ import annotations


import numpy as np

from lrclr.model.letterbox import letterbox_geometry
from lrclr.model.explain import Explanation, FindingScore, RegionExplanation, WordExplanation

GRID = (4, 4)


def made_explanation(report: str, findings: dict[str, float], with_regions: bool = True) -> Explanation:
    """An explanation of a 200 x 200 image on a 4 x 4 grid: two regions, every word split on spaces."""
    words = report.split()
    regions = (
        RegionExplanation(1, 0.9, (0, 0), (0.0, 0.0, 50.0, 50.0), ()),
        RegionExplanation(2, 0.6, (3, 3), (150.0, 150.0, 200.0, 200.0), ()),
    ) if with_regions else ()
    word_results, start = [], 0
    for i, text in enumerate(words):
        start = report.index(text, start)
        similarity = np.zeros(GRID, dtype=np.float32)
        similarity[1, 2] = 1.0
        attention = ((1.0, 0.0) if i % 2 == 0 else (0.25, 0.75)) if with_regions else None
        word_results.append(WordExplanation(i, text, start, start + len(text), attention, similarity))
        start += len(text)
    return Explanation("test-model", report, False, letterbox_geometry((200, 200), 200), GRID,
                       tuple(FindingScore(n, p) for n, p in findings.items()), regions, tuple(word_results))
