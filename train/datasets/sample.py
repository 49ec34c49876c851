"""The one record every dataset yields: an image, its report, and whatever ground truth is known."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    image_id: str  # unique within its dataset, e.g. "00000075_000.png" or "phantom-000123"
    patient_id: str  # splits are patient-disjoint; datasets without patients use image_id
    pixels: np.ndarray  # float32 (H, W) in [0, 1], bone bright (lrclr.imaging.reading convention)
    report: str  # the text the model sees ("" when a dataset has no report)
    # Finding name (NIH spelling where one exists) -> 1 positive, 0 negative, -1 uncertain.
    labels: dict[str, int] = field(default_factory=dict)
    # Localization ground truth in the pixel coordinates of ``pixels``:
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # finding -> bool (H, W)
    boxes: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)  # finding -> [(x0, y0, x1, y1)]
    source: str = ""  # provenance, e.g. "nih+composed:seed0" or "openi:CXR12"
