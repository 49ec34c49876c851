"""Raster helpers for the phantom generator: coordinate grids, soft shapes, cheap smooth noise.

Coordinates are normalised: ``u`` runs 0..1 left to right, ``v`` 0..1 top to bottom. ``u`` is kept as
a (1, W) row and ``v`` as an (H, 1) column so numpy broadcasts a shape test into one full-size
operation; localised shapes are evaluated only inside their bounding box. Both matter for the speed
target (a whole 320 px phantom in a few milliseconds on one core).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Grid:
    """Normalised pixel-centre coordinates for an image of ``height`` x ``width``."""

    height: int
    width: int
    u: Array  # (1, W) float32
    v: Array  # (H, 1) float32

    def box(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Row and column slices covering [u0, u1] x [v0, v1] (clipped to the image)."""
        c0 = min(max(int(np.floor(u0 * self.width)), 0), self.width)
        c1 = min(max(int(np.ceil(u1 * self.width)) + 1, c0), self.width)
        r0 = min(max(int(np.floor(v0 * self.height)), 0), self.height)
        r1 = min(max(int(np.ceil(v1 * self.height)) + 1, r0), self.height)
        return slice(r0, r1), slice(c0, c1)


@lru_cache(maxsize=16)
def make_grid(height: int, width: int) -> Grid:
    u = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]
    v = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    u.setflags(write=False)
    v.setflags(write=False)
    return Grid(height, width, u, v)


def ramp(signed: Array, width: float) -> Array:
    """Soft inside-indicator of ``signed < 0``: 1 inside, 0 outside, linear over ``width``."""
    return np.clip(0.5 - signed * np.float32(1.0 / width), 0.0, 1.0)


def ellipse(grid: Grid, cu: float, cv: float, au: float, av: float,
            edge: float = 0.15) -> tuple[tuple[slice, slice], Array]:
    """Soft filled ellipse, evaluated inside its bounding box only; ``edge`` is relative."""
    pad = 1.0 + edge
    box = grid.box(cu - au * pad, cu + au * pad, cv - av * pad, cv + av * pad)
    x = (grid.u[:, box[1]] - cu) * np.float32(1.0 / au)
    y = (grid.v[box[0]] - cv) * np.float32(1.0 / av)
    return box, ramp(x * x + y * y - 1.0, 2.0 * edge)


def gaussian(grid: Grid, cu: float, cv: float, su: float, sv: float) -> Array:
    """Full-size separable Gaussian bump: one outer product instead of a full-size exp."""
    gu = np.exp(-0.5 * ((grid.u - cu) / su) ** 2)
    gv = np.exp(-0.5 * ((grid.v - cv) / sv) ** 2)
    return (gv * gu).astype(np.float32, copy=False)


@lru_cache(maxsize=32)
def _blur_matrix(n_out: int, n_in: int) -> Array:
    """Row-normalised Gaussian interpolation matrix (n_out x n_in) for smooth upsampling."""
    centres_out = (np.arange(n_out) + 0.5) / n_out
    centres_in = (np.arange(n_in) + 0.5) / n_in
    sigma = 0.7 / n_in
    weights = np.exp(-0.5 * ((centres_out[:, None] - centres_in[None, :]) / sigma) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    # Blurring shrinks the variance; rescale so the field has roughly unit spread.
    return (weights / np.sqrt((weights ** 2).sum(axis=1).mean())).astype(np.float32)


def smooth_noise(rng: np.random.Generator, grid: Grid, cells: int) -> Array:
    """Band-limited noise of roughly unit variance with about ``cells`` blobs across the image."""
    return noise_patch(rng, grid.height, grid.width, cells, cells)


def noise_patch(rng: np.random.Generator, height: int, width: int, rows: int, cols: int) -> Array:
    """Smooth noise for a ``height`` x ``width`` patch with ``rows`` x ``cols`` blobs.

    Two small matrix products instead of a per-pixel filter: cheap at any size.
    """
    coarse = rng.standard_normal((max(rows, 1), max(cols, 1)), dtype=np.float32)
    return _blur_matrix(height, coarse.shape[0]) @ coarse @ _blur_matrix(width, coarse.shape[1]).T


@lru_cache(maxsize=4)
def _grain_tile(height: int, width: int) -> Array:
    tile = np.random.default_rng(20240603).standard_normal((2 * height, 2 * width), dtype=np.float32)
    tile.setflags(write=False)
    return tile


def grain(rng: np.random.Generator, height: int, width: int) -> Array:
    """Unit-variance pixel noise: a seed-chosen window of a fixed tile.

    Drawing 100k fresh normals costs more than the whole anatomy; the grain only needs to look like
    quantum noise and differ between seeds, which a random window of a larger tile gives.
    """
    tile = _grain_tile(height, width)
    r, c = int(rng.integers(0, height)), int(rng.integers(0, width))
    window = tile[r:r + height, c:c + width]
    return window[::-1] if rng.random() < 0.5 else window
