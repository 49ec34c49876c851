"""From a decoded radiograph to the model's square input, and back to original pixels.

Radiographs are rarely square, and squashing them distorts the heart and the lung bases, so the
image is letterboxed: scaled to fit the model size keeping its aspect ratio, then padded with black.
``Letterbox`` remembers that geometry so every box the model produces (a cell of its patch grid) can
be reported in the ORIGINAL image's pixel coordinates, and so cells that fall on padding are never
selected as regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Letterbox:
    original_size: tuple[int, int]  # (width, height) of the image as stored
    model_size: int  # side of the square model input
    scale: float  # model pixels per original pixel
    pad_left: int
    pad_top: int
    content_size: tuple[int, int]  # (width, height) of the scaled image inside the square

    def to_original(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A box (x0, y0, x1, y1) in model-input pixels -> original pixels, clipped to the image."""
        width, height = self.original_size
        x0, y0, x1, y1 = box
        mapped = (
            (x0 - self.pad_left) / self.scale,
            (y0 - self.pad_top) / self.scale,
            (x1 - self.pad_left) / self.scale,
            (y1 - self.pad_top) / self.scale,
        )
        return (
            float(np.clip(mapped[0], 0, width)),
            float(np.clip(mapped[1], 0, height)),
            float(np.clip(mapped[2], 0, width)),
            float(np.clip(mapped[3], 0, height)),
        )

    def cell_box(self, row: int, col: int, grid: tuple[int, int]) -> tuple[float, float, float, float]:
        """The original-pixel box covered by cell (row, col) of a (rows, cols) patch grid."""
        rows, cols = grid
        cell_h, cell_w = self.model_size / rows, self.model_size / cols
        return self.to_original((col * cell_w, row * cell_h, (col + 1) * cell_w, (row + 1) * cell_h))

    def cell_centre(self, row: int, col: int, grid: tuple[int, int]) -> tuple[int, int]:
        """(y, x): the original pixel at the centre of cell (row, col), where a cell's peak is placed."""
        width, height = self.original_size
        x0, y0, x1, y1 = self.cell_box(row, col, grid)
        return min(int((y0 + y1) / 2), height - 1), min(int((x0 + x1) / 2), width - 1)

    def content_cells(self, grid: tuple[int, int], at_least: int) -> np.ndarray:
        """The cells region selection may pick, and the pointing game's candidates (one rule): cells
        at least half covered by image content; partly covered ones too when that leaves fewer than
        ``at_least`` (extreme aspect ratios); every cell when even that does."""
        mask = self.valid_cells(grid)
        if mask.sum() < at_least:
            mask = self.valid_cells(grid, min_fraction=1e-6)
        if mask.sum() < at_least:
            mask = np.ones_like(mask)
        return mask

    def valid_cells(self, grid: tuple[int, int], min_fraction: float = 0.5) -> np.ndarray:
        """Boolean (rows, cols): cells at least ``min_fraction`` covered by image content."""
        rows, cols = grid
        content_w, content_h = self.content_size

        def coverage(count: int, start: int, length: int) -> np.ndarray:
            edges = np.linspace(0, self.model_size, count + 1)
            lo = np.maximum(edges[:-1], start)
            hi = np.minimum(edges[1:], start + length)
            return np.clip(hi - lo, 0, None) / np.diff(edges)

        covered = np.outer(coverage(rows, self.pad_top, content_h), coverage(cols, self.pad_left, content_w))
        return covered >= min_fraction


def letterbox_geometry(original_size: tuple[int, int], model_size: int) -> Letterbox:
    width, height = original_size
    if width < 1 or height < 1:
        raise ValueError(f"image has no pixels: {width}x{height}")
    scale = model_size / max(width, height)
    content_w = max(1, round(width * scale))
    content_h = max(1, round(height * scale))
    return Letterbox(
        original_size=(width, height),
        model_size=model_size,
        scale=scale,
        pad_left=(model_size - content_w) // 2,
        pad_top=(model_size - content_h) // 2,
        content_size=(content_w, content_h),
    )


def letterbox_pixels(pixels: np.ndarray, model_size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, Letterbox]:
    """(H, W) float pixels in [0, 1] -> a (1, S, S) float32 tensor on ``device`` and its geometry.

    Downscaling uses antialiasing: radiographs carry fine rib and vessel edges that alias badly
    with plain bilinear sampling. On a GPU the resize runs there: on an H200 resizing on the CPU
    held batch zero-shot scoring to a sixth of what the image tower alone could take.
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale array, got shape {pixels.shape}")
    height, width = pixels.shape
    geometry = letterbox_geometry((width, height), model_size)
    content_w, content_h = geometry.content_size
    image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None].to(device)
    resized = F.interpolate(image, size=(content_h, content_w), mode="bilinear", antialias=True, align_corners=False)
    canvas = torch.zeros(1, model_size, model_size, dtype=torch.float32, device=device)
    top, left = geometry.pad_top, geometry.pad_left
    canvas[:, top : top + content_h, left : left + content_w] = resized[0].clamp_(0.0, 1.0)
    return canvas, geometry


def as_pixels(image) -> np.ndarray:
    """Accept a decoded image (anything with ``.pixels``, e.g. ``LoadedImage``) or a 2-D array."""
    pixels = getattr(image, "pixels", image)
    array = np.asarray(pixels, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image in [0, 1], got shape {array.shape}")
    return array


def prepare_images(images, model_size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[Letterbox]]:
    """A sequence of images -> a (B, 1, S, S) batch on ``device`` and each image's geometry."""
    tensors, geometries = [], []
    for image in images:
        tensor, geometry = letterbox_pixels(as_pixels(image), model_size, device)
        tensors.append(tensor)
        geometries.append(geometry)
    if not tensors:
        raise ValueError("no images given")
    return torch.stack(tensors), geometries
