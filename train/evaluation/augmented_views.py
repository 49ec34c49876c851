"""Test-time augmentation: a fold model's scores averaged over a few fixed views of each image.

The views are small geometric changes inside the training augmentation's range (scale 0.95-1.05,
translation up to 5% of a side; ``train.training.augment``), so every view is an image the model
was trained to read. No flips: a mirrored chest puts the heart on the wrong side. The views are
fixed, not drawn, so a cross-validation scored with them is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.training.augment import warp_pixels


@dataclass(frozen=True)
class View:
    """One fixed view: a zoom about the centre and a shift, as fractions of the image side."""

    name: str
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        if (self.scale, self.shift_x, self.shift_y) == (1.0, 0.0, 0.0):
            return np.asarray(pixels, dtype=np.float32)
        height, width = pixels.shape
        return warp_pixels(pixels, scale=self.scale, tx=self.shift_x * width, ty=self.shift_y * height)


# The first view is the image itself, so a run with K views always includes the plain score.
VIEWS = (
    View("identity"),
    View("zoom in 5%", scale=1.05),
    View("zoom out 5%", scale=0.95),
    View("shift right 4%", shift_x=0.04),
    View("shift left 4%", shift_x=-0.04),
    View("shift down 4%", shift_y=0.04),
    View("shift up 4%", shift_y=-0.04),
)


def fixed_views(count: int) -> tuple[View, ...]:
    """The first ``count`` fixed views (1: the image alone)."""
    if not 1 <= count <= len(VIEWS):
        raise ValueError(f"test-time views must be 1-{len(VIEWS)}, got {count}")
    return VIEWS[:count]
