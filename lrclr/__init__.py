"""LRCLR: Local Region Contrastive Learning for chest X-ray image-report models.

The library shared by the Streamlit app (``app.py``, ``pages/``) and the training package
(``train/``). It never imports Streamlit. The names below are its public API (the README's examples
use them); each is imported on first use, so ``import lrclr`` stays cheap for the light modules
(the flag store, the report labeler) that do not need torch.

Subpackages, each readable on its own: ``model`` (the network and its scores), ``imaging``
(reading radiographs), ``reports`` (report text and the labeler), ``annotations`` (the flag store),
``batch`` (many files at once), ``trust`` (how far to trust what is shown), ``display`` (pictures
for a reader), ``deployment`` (server settings and logins).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "LRCLRModel": "lrclr.model.lrclr_model",
    "CaseImage": "lrclr.model.lrclr_model",
    "Explanation": "lrclr.model.explain",
    "FindingScore": "lrclr.model.explain",
    "RegionExplanation": "lrclr.model.explain",
    "WordExplanation": "lrclr.model.explain",
    "ZeroShotScores": "lrclr.model.zero_shot",
    "load_image": "lrclr.imaging.reading",
    "LoadedImage": "lrclr.imaging.reading",
    "label_report": "lrclr.reports.labeler",
    "AnnotationStore": "lrclr.annotations.store",
    "PairKey": "lrclr.annotations.records",
    "NIH_FINDINGS": "lrclr.findings",
    "DEFAULT_MODEL_DIR": "lrclr.bundled",
    "DEFAULT_DEMO_DIR": "lrclr.bundled",
    "load_gallery": "lrclr.demo",
    "LRCLRError": "lrclr.errors",
    "ImageReadError": "lrclr.errors",
    "ModelLoadError": "lrclr.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lrclr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from lrclr.annotations.records import PairKey
    from lrclr.annotations.store import AnnotationStore
    from lrclr.bundled import DEFAULT_DEMO_DIR, DEFAULT_MODEL_DIR
    from lrclr.demo import load_gallery
    from lrclr.errors import ImageReadError, LRCLRError, ModelLoadError
    from lrclr.findings import NIH_FINDINGS
    from lrclr.imaging.reading import LoadedImage, load_image
    from lrclr.model.explain import Explanation, FindingScore, RegionExplanation, WordExplanation
    from lrclr.model.lrclr_model import CaseImage, LRCLRModel
    from lrclr.model.zero_shot import ZeroShotScores
    from lrclr.reports.labeler import label_report
