"""Flip and rotate the DISPLAY: the picture, and everything drawn on it (heat maps, region boxes,
masks, measurements) by the same transform, so they stay where they were on the anatomy.

The model's input is never oriented: ``LoadedImage.pixels``, the encodings and every box, map and
measurement the library computes or exports stay in the original image's pixels. Only what is
drawn passes through ``Orientation``; a point the reader picks on the oriented display comes back
through ``Orientation.to_original``.

The transform: first a left-right flip (if asked), then a clockwise rotation by 0, 90, 180 or 270
degrees, as a reader sees a PACS viewer's "flip horizontal" and "rotate right" compose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Orientation:
    rotation: int = 0  # degrees clockwise, one of ROTATIONS
    flipped: bool = False  # mirrored left-right before the rotation

    def __post_init__(self) -> None:
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {self.rotation!r}")

    @property
    def is_identity(self) -> bool:
        return self.rotation == 0 and not self.flipped

    def rotated_right(self) -> "Orientation":
        return Orientation((self.rotation + 90) % 360, self.flipped)

    def flipped_horizontally(self) -> "Orientation":
        """A left-right flip of what is on screen now, whatever the rotation: after a quarter turn,
        the screen's left-right is the image's up-down, so the rotation changes sign."""
        return Orientation((360 - self.rotation) % 360, not self.flipped)

    def describe(self) -> str:
        """For captions and exports ('' when the display is as stored)."""
        parts = (["flipped left-right"] if self.flipped else []) + (
            [f"rotated {self.rotation}° clockwise"] if self.rotation else [])
        return " and ".join(parts)

    def size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of a picture of ``size`` once oriented."""
        width, height = size
        return (height, width) if self.rotation in (90, 270) else (width, height)

    def image(self, picture: Image.Image) -> Image.Image:
        if self.is_identity:
            return picture
        if self.flipped:
            picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        transposes = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
                      270: Image.Transpose.ROTATE_90}  # PIL's ROTATE_n turns counter-clockwise
        return picture.transpose(transposes[self.rotation]) if self.rotation else picture

    def array(self, values: np.ndarray) -> np.ndarray:
        """An (H, W, ...) array (a heat map, a mask) oriented as ``image`` orients a picture."""
        if self.flipped:
            values = values[:, ::-1]
        return np.rot90(values, k=-(self.rotation // 90)) if self.rotation else values

    def point(self, x: float, y: float, size: tuple[int, int]) -> tuple[float, float]:
        """A point in a picture of ``size`` (continuous coordinates, 0..width) on the oriented one."""
        width, height = size
        if self.flipped:
            x = width - x
        if self.rotation == 90:
            return height - y, x
        if self.rotation == 180:
            return width - x, height - y
        if self.rotation == 270:
            return y, width - x
        return x, y

    def to_original(self, x: float, y: float, size: tuple[int, int]) -> tuple[float, float]:
        """The inverse of ``point``: a point picked on the oriented display, in the picture of
        ``size`` (the unoriented one's size)."""
        width, height = size
        if self.rotation == 90:
            x, y = y, height - x
        elif self.rotation == 180:
            x, y = width - x, height - y
        elif self.rotation == 270:
            x, y = width - y, x
        return (width - x, y) if self.flipped else (x, y)

    def box(self, box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[float, float, float, float]:
        """An axis-aligned (x0, y0, x1, y1) box on the oriented picture (still axis-aligned)."""
        corners = [self.point(x, y, size) for x, y in ((box[0], box[1]), (box[2], box[3]))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        return min(xs), min(ys), max(xs), max(ys)
