"""Augmentation suited to chest radiographs.

Small geometric changes (rotation, translation, scale) mimic patient positioning; gamma, contrast,
brightness and noise mimic exposure and detector differences. Large rotations, crops that cut the
lungs, and horizontal flips are avoided by default: a flipped chest puts the heart on the right, and
a report that says "left effusion" would then point at the wrong side, teaching the model to ignore
laterality. A flip is available (``hflip_probability``) only together with ``swap_laterality`` on
the report, so words and pixels stay consistent.

Geometry is applied identically to pixels, masks (nearest neighbour) and boxes (the four corners
transformed, the box re-fitted around them and clipped to the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from lrclr.reports.laterality import swap_laterality
from train.datasets.sample import Sample

Box = tuple[float, float, float, float]

# --- geometry -------------------------------------------------------------------------------------


def _forward_matrix(height: int, width: int, angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """3x3 map from input (x, y) to output (x, y) in continuous pixel coordinates (pixel i spans
    [i, i + 1)): rotate and scale about the image centre, then translate."""
    cx, cy = width / 2.0, height / 2.0
    angle = math.radians(angle_deg)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.array([cx + tx, cy + ty]) - linear @ np.array([cx, cy])
    matrix = np.eye(3)
    matrix[:2, :2], matrix[:2, 2] = linear, offset
    return matrix


def _warp(values: np.ndarray, forward: np.ndarray, order: int) -> np.ndarray:
    """Resample so that output pixel centres take the input value at the inverse-mapped point."""
    inverse = np.linalg.inv(forward)
    # ndimage works in (row, col) index space where centres sit at integers: convert (x, y) + 0.5.
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    index_map = swap @ np.linalg.inv(shift) @ inverse @ shift @ swap
    return ndimage.affine_transform(values, index_map[:2, :2], offset=index_map[:2, 2], order=order,
                                    mode="constant", cval=0.0, prefilter=False)


def transform_box(box: Box, forward: np.ndarray, width: int, height: int) -> Box | None:
    """The axis-aligned box around the transformed corners, clipped; None if nothing is left."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=float)
    moved = corners @ forward.T
    nx0, ny0 = max(0.0, moved[:, 0].min()), max(0.0, moved[:, 1].min())
    nx1, ny1 = min(float(width), moved[:, 0].max()), min(float(height), moved[:, 1].max())
    return (float(nx0), float(ny0), float(nx1), float(ny1)) if nx1 > nx0 and ny1 > ny0 else None


def warp_pixels(pixels: np.ndarray, angle_deg: float = 0.0, scale: float = 1.0, tx: float = 0.0,
                ty: float = 0.0) -> np.ndarray:
    """``pixels`` rotated and scaled about the centre, then shifted by (tx, ty) pixels; what falls
    outside is black, as in training."""
    height, width = pixels.shape
    return _warp(pixels.astype(np.float32), _forward_matrix(height, width, angle_deg, scale, tx, ty), order=1)


def _geometric(sample: Sample, forward: np.ndarray) -> Sample:
    height, width = sample.pixels.shape
    pixels = _warp(sample.pixels.astype(np.float32), forward, order=1)
    masks = {name: _warp(mask.astype(np.uint8), forward, order=0).astype(bool) for name, mask in sample.masks.items()}
    boxes: dict[str, list[Box]] = {}
    for name, found in sample.boxes.items():
        kept = [b for b in (transform_box(box, forward, width, height) for box in found) if b is not None]
        if kept:
            boxes[name] = kept
    return replace(sample, pixels=pixels, masks=masks, boxes=boxes)


def hflip(sample: Sample) -> Sample:
    """Mirror the image left-right, with masks, boxes and the report's laterality words."""
    width = sample.pixels.shape[1]
    boxes = {name: [(width - x1, y0, width - x0, y1) for x0, y0, x1, y1 in found]
             for name, found in sample.boxes.items()}
    return replace(sample, pixels=np.ascontiguousarray(sample.pixels[:, ::-1]),
                   masks={name: np.ascontiguousarray(m[:, ::-1]) for name, m in sample.masks.items()},
                   boxes=boxes, report=swap_laterality(sample.report))


# --- the transform --------------------------------------------------------------------------------


@dataclass
class RadiographAugment:
    """A ``Sample -> Sample`` transform drawing every parameter from the given generator."""

    max_rotation_deg: float = 5.0
    max_translate: float = 0.05  # fraction of the image side, each axis
    scale: tuple[float, float] = (0.95, 1.05)
    gamma: tuple[float, float] = (0.8, 1.25)  # drawn log-uniformly, so 0.8 and 1.25 are equally likely
    contrast: tuple[float, float] = (0.9, 1.1)  # stretch about the image mean
    brightness: tuple[float, float] = (-0.05, 0.05)
    noise_std: tuple[float, float] = (0.0, 0.01)
    hflip_probability: float = 0.0  # > 0 also swaps laterality words in the report

    def __post_init__(self) -> None:
        for name in ("scale", "gamma", "contrast", "brightness", "noise_std"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} range ({low}, {high}) has low > high")
        if min(self.scale) <= 0 or min(self.gamma) <= 0 or min(self.noise_std) < 0:
            raise ValueError("scale and gamma must be > 0 and noise_std >= 0")
        if not 0.0 <= self.hflip_probability <= 1.0:
            raise ValueError(f"hflip_probability must be in [0, 1], got {self.hflip_probability}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.hflip_probability > 0 and rng.random() < self.hflip_probability:
            sample = hflip(sample)
        height, width = sample.pixels.shape
        angle = rng.uniform(-self.max_rotation_deg, self.max_rotation_deg)
        zoom = rng.uniform(*self.scale)
        tx, ty = rng.uniform(-self.max_translate, self.max_translate, size=2) * (width, height)
        if (angle, zoom, tx, ty) != (0.0, 1.0, 0.0, 0.0):
            sample = _geometric(sample, _forward_matrix(height, width, angle, zoom, tx, ty))
        return replace(sample, pixels=self._intensity(sample.pixels, rng))

    def _intensity(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gamma = math.exp(rng.uniform(math.log(self.gamma[0]), math.log(self.gamma[1])))
        contrast = rng.uniform(*self.contrast)
        brightness = rng.uniform(*self.brightness)
        noise = rng.uniform(*self.noise_std)
        out = pixels.astype(np.float32)
        if gamma != 1.0:
            out = np.power(np.clip(out, 0.0, 1.0), gamma, dtype=np.float32)
        if contrast != 1.0:
            out = (out - out.mean()) * contrast + out.mean()
        if brightness != 0.0:
            out = out + brightness
        if noise > 0.0:
            out = out + rng.normal(0.0, noise, size=out.shape).astype(np.float32)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
