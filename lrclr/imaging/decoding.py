"""What every decoder in this package shares: the decoded image type, the size limits, the
downsampling rule for images over a memory budget, and error messages that never quote file data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from lrclr.errors import (
    CorruptImageError,
    ImageReadError,
    ImageTooLargeError,
)

# Chest films are 4-9 MP (a 43x43 cm detector at 0.1 mm is ~18 MP); 60 MP leaves room for large
# mammography or stitched spine films while refusing decompression bombs before any allocation.
DEFAULT_MAX_PIXELS = 60_000_000
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the weights Pillow's "L" uses


@dataclass(frozen=True)
class ModalityValues:
    """A grayscale DICOM's pixels in its own units (after the modality LUT or rescale, before any
    VOI), with the file's display settings, so a viewer can window in those units."""

    values: np.ndarray  # float32 (H, W), the same grid as ``LoadedImage.pixels``
    unit: str  # "HU" for CT-like rescales, else the RescaleType or "stored value"
    windows: tuple[tuple[float, float], ...] = ()  # the file's (WindowCenter, WindowWidth) pairs
    window_names: tuple[str, ...] = ()  # WindowCenterWidthExplanation, one per window where given
    voi_function: str = "LINEAR"  # VOILUTFunction: LINEAR, LINEAR_EXACT or SIGMOID
    voi_lut_range: tuple[float, float] | None = None  # first input value and entry count of the VOI LUT
    inverted: bool = False  # MONOCHROME1 (or INVERSE): higher values are shown darker


@dataclass(frozen=True)
class LoadedImage:
    """A decoded radiograph. ``pixels`` is float32 (H, W) in [0, 1], 1 = bright (bone)."""

    pixels: np.ndarray
    original_size: tuple[int, int]  # (width, height); equals the pixels' shape, EXIF rotation applied
    source_format: str  # "png" | "jpeg" | "dicom"
    bits_stored: int
    header: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    pixel_spacing_mm: tuple[float, float] | None = None  # DICOM order: (row spacing, column spacing)
    # Mean spread between the colour channels of the source (0 for grayscale): the input gate's
    # evidence that a photograph, not a radiograph, was uploaded (lrclr.imaging.input_check).
    colourfulness: float = 0.0
    # How many stored pixels each decoded pixel spans along a side (1: full resolution): an image
    # over the caller's ``max_decoded_pixels`` is downsampled while it is decoded, and says so in
    # ``warnings``.
    decoded_scale: int = 1
    # DICOM grayscale only: the values in the file's own units, for windowing in them.
    modality: ModalityValues | None = None


def read_error(cls: type[ImageReadError], name: str | None, message: str) -> ImageReadError:
    if name:
        return cls(f"{name}: {message}")
    return cls(message[:1].upper() + message[1:])


def short_reason(exc: BaseException) -> str:
    # Library messages may quote element values, which could be patient data: drop quoted parts.
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "...", text)
    text = re.sub(r"\s*<[^>]*>", "", text)  # object reprs such as <_io.BytesIO object at 0x...>
    return text[:160] or type(exc).__name__


def check_size(width: int, height: int, max_pixels: int, name: str | None) -> None:
    if width <= 0 or height <= 0:
        raise read_error(CorruptImageError, name, f"the image declares an invalid size of {width} x {height} pixels")
    if width * height > max_pixels:
        raise read_error(ImageTooLargeError, name,
                     f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), "
                     f"more than the {max_pixels / 1e6:.0f} megapixels allowed")


def decoded_scale_for(width: int, height: int, max_decoded_pixels: int | None) -> int:
    """The smallest whole factor that brings width x height within the budget."""
    if not max_decoded_pixels or width * height <= max_decoded_pixels:
        return 1
    return math.ceil(math.sqrt(width * height / max_decoded_pixels))


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Each factor x factor block averaged (edge rows and columns that fill no block dropped), in
    the input's dtype. The float accumulation is buffered by numpy, never a full-size copy."""
    height, width = values.shape[0] // factor, values.shape[1] // factor
    blocks = values[:height * factor, :width * factor].reshape(height, factor, width, factor, *values.shape[2:])
    means = blocks.mean(axis=(1, 3), dtype=np.float32)
    return np.rint(means).astype(values.dtype) if np.issubdtype(values.dtype, np.integer) else means.astype(values.dtype)


def downsample_note(factor: int, width: int, height: int) -> list[str]:
    if factor == 1:
        return []
    return [f"shown and scored at 1/{factor} of its {width} x {height} pixels (this deployment's memory budget "
            "for one image)"]


def min_max(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float64))
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)
