"""Map specificity of a model over images (the definition is ``lrclr.trust.map_checks``).

Each reference phrase is grounded exactly as the app's Phrase tab grounds it
(``lrclr.trust.case_findings.phrase_map``: LRCLR's region attention placed on the selected cells, the
baseline's word-patch similarity); the word-patch similarity maps are measured the same way for
both models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from lrclr.trust.map_checks import REFERENCE_PHRASES, mean_pairwise_correlation
from lrclr.trust.case_findings import phrase_map

DRAWN, SIMILARITY = "drawn", "patch_similarity"


@dataclass(frozen=True)
class MapSpecificity:
    map_kind: str  # "drawn" (what the app paints: attention for LRCLR) or "patch_similarity"
    mean_correlation: float  # over images of the mean pairwise correlation; lower = more specific
    per_image: tuple[float, ...]
    phrases: tuple[str, ...]


def _similarity_map(explanation) -> np.ndarray:
    if not explanation.words:
        return np.zeros(explanation.grid, dtype=np.float32)
    return np.mean([np.asarray(w.patch_similarity, dtype=np.float32) for w in explanation.words], axis=0)


def map_specificity(model, images: Iterable, phrases: Sequence[str] = REFERENCE_PHRASES) -> dict[str, MapSpecificity]:
    """Specificity of the drawn map and of the similarity map over ``images`` (arrays or samples)."""
    if len(phrases) < 2:
        raise ValueError("map specificity needs at least two phrases")
    drawn, similarity = [], []
    for image in images:
        case = model.encode_case(getattr(image, "pixels", image))
        valid = case.features.valid[0].cpu().numpy()
        explanations = [model.explain(case, phrase, findings=()) for phrase in phrases]
        drawn.append(mean_pairwise_correlation([phrase_map(e) for e in explanations], valid))
        similarity.append(mean_pairwise_correlation([_similarity_map(e) for e in explanations], valid))
    return {kind: MapSpecificity(kind, float(np.mean(values)) if values else float("nan"), tuple(values), tuple(phrases))
            for kind, values in ((DRAWN, drawn), (SIMILARITY, similarity))}
