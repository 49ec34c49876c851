"""Window/level in the image's own units: the DICOM file's modality values (HU for CT-like
rescales, else stored values) or a PNG/JPEG's grey levels, with the presets a reader expects.

Display only: what the model reads is ``LoadedImage.pixels`` as decoded, whatever the window.

Presets, first the default:
- the file's own: its VOI LUT, then each WindowCenter/WindowWidth pair (the first pair is what the
  decoder applied, so that preset reproduces ``LoadedImage.pixels`` exactly);
- "Full range": the values' minimum to maximum, or a PNG/JPEG's 0-255 (0-65535): the default when
  the file has no window, and it shows the pixels as decoded;
- lung, mediastinum, bone. In Hounsfield units they are the usual CT windows. A radiograph's values
  are not HU (they depend on the detector and its processing), so there they are chosen from this
  image's own histogram: lung spreads the darker 2-70 % of the displayed brightness (the lung
  fields get the contrast, the mediastinum goes white), mediastinum the brighter 35-99.5 % (heart,
  spine, lines and tubes behind the heart), bone the top 60-99.9 %, narrow, for cortical edges.
  The preset's name says which kind it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrclr.imaging.decoding import LoadedImage

FILE_LUT, FULL_RANGE = "VOI LUT (file)", "Full range"
HU_PRESETS = {"Lung": (-600.0, 1500.0), "Mediastinum": (50.0, 350.0), "Bone": (400.0, 1800.0)}
# Percentiles of the displayed brightness (0 dark, 100 bright) that bound each radiograph preset.
HISTOGRAM_PRESETS = {"Lung": (2.0, 70.0), "Mediastinum": (35.0, 99.5), "Bone": (60.0, 99.9)}


@dataclass(frozen=True)
class WindowPreset:
    name: str  # shown in the preset list
    center: float  # in the scale's unit
    width: float
    source: str  # "file", "range", "HU" or "histogram": where the numbers come from
    uses_lut: bool = False  # the file's VOI LUT, applied as the decoder did (center/width approximate it)


@dataclass(frozen=True)
class WindowScale:
    """What the level and width sliders range over for one image, and its presets (first: default)."""

    unit: str  # "HU", "stored value", "grey level (8-bit)", ...
    low: float  # the values' range: the level slider's bounds (widened to take every preset)
    high: float
    step: float  # 1 for integer values
    max_width: float
    presets: tuple[WindowPreset, ...]
    inverted: bool  # higher values shown darker (MONOCHROME1)

    @property
    def default(self) -> WindowPreset:
        return self.presets[0]

    def preset(self, name: str) -> WindowPreset | None:
        return next((p for p in self.presets if p.name == name), None)

    def clamp(self, center: float, width: float) -> tuple[float, float]:
        """A (center, width) the sliders can show: within their bounds."""
        return (float(min(max(center, self.low), self.high)), float(min(max(width, self.step), self.max_width)))


def window_scale(image: LoadedImage) -> WindowScale:
    """The scale and presets of ``image``: in the DICOM file's units when it has them, else in its
    grey levels (8- or 16-bit, ``bits_stored``)."""
    source = _source(image)
    values = source.values
    sample = values[:: max(1, values.shape[0] // 64), :: max(1, values.shape[1] // 64)]
    integral = bool(np.all(np.mod(sample, 1) == 0))
    named = _hu_presets() if source.unit == "HU" else _histogram_presets(values, source.inverted, integral)
    presets = (*source.file_presets, source.full_range, *named)
    span = max(source.high - source.low, 1.0 if integral else 1e-3)
    low = min(source.low, *(p.center for p in presets))
    high = max(source.high, *(p.center for p in presets))
    max_width = max(2 * span, *(p.width for p in presets))
    return WindowScale(source.unit, float(low), float(high), _step(integral, span, presets), float(max_width),
                       presets, source.inverted)


def _step(integral: bool, span: float, presets: tuple[WindowPreset, ...]) -> float:
    """1 for integer values, unless a preset (a file's window) needs halves; a slider snaps what it
    shows to its step, and a preset off the grid would be shown moved."""
    if not integral:
        return span / 1000
    numbers = [n for p in presets for n in (p.center, p.width)]
    if all(float(n).is_integer() for n in numbers):
        return 1.0
    return 0.5 if all(float(2 * n).is_integer() for n in numbers) else span / 1000


def dragged_window(scale: WindowScale, center: float, width: float, dx: float, dy: float) -> tuple[float, float]:
    """The window after a windowing drag on the image, as PACS viewers do it: ``dx`` and ``dy`` are
    the drag in fractions of the viewer's width and height. Right widens the window (less
    contrast), left narrows it; down darkens the picture (on MONOCHROME1, where higher values show
    darker, that is a lower level), up brightens it. The level moves by the drag times the width,
    so a narrow window is fine-tuned; the result is on the sliders' grid and within their bounds."""
    new_width = width * float(np.exp(2.0 * dx))
    shift = dy * new_width
    new_center = center - shift if scale.inverted else center + shift
    step = scale.step
    return scale.clamp(round(new_center / step) * step, max(step, round(new_width / step) * step))


def windowed(image: LoadedImage, scale: WindowScale, center: float, width: float,
             preset: WindowPreset | None = None) -> np.ndarray:
    """``image`` windowed for display: float32 (H, W) in [0, 1], 1 bright, as ``LoadedImage.pixels``
    (so MONOCHROME1 is already turned the right way). The file's VOI LUT preset gives the decoded
    pixels themselves."""
    if preset is not None and preset.uses_lut:
        return image.pixels
    values = _grey_levels(image) if image.modality is None else image.modality.values
    function = image.modality.voi_function if image.modality is not None else "LINEAR"
    unit = voi_window(values, center, width, function)  # PS3.3's window for grey levels too: one rule
    if scale.inverted:
        unit = 1.0 - unit
    return unit.astype(np.float32)


def voi_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 VOI functions with output in [0, 1]; a width below the function's
    minimum is taken as that minimum, so a slider at its end still shows something."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6)))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / max(width, 1e-6) + 0.5, 0.0, 1.0)
    if width <= 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class _Source:
    values: np.ndarray
    unit: str
    low: float  # the range the level slider covers before presets widen it
    high: float
    full_range: WindowPreset
    file_presets: tuple[WindowPreset, ...]
    inverted: bool


def _source(image: LoadedImage) -> _Source:
    modality = image.modality
    if modality is None:
        # A PNG/JPEG in its grey levels; full range is the format's, which shows the pixels as decoded.
        bits = 16 if image.bits_stored == 16 else 8
        top = 2.0**bits - 1
        return _Source(_grey_levels(image), f"grey level ({bits}-bit)", 0.0, top,
                       _full_range(f"{FULL_RANGE} (0-{top:g})", 0.0, top), (), False)
    values = modality.values
    low, high = float(np.min(values)), float(np.max(values))
    full = _full_range(f"{FULL_RANGE} ({low:g} to {high:g})", low, high)
    presets = []
    if modality.voi_lut_range is not None:
        first, entries = modality.voi_lut_range
        presets.append(WindowPreset(FILE_LUT, first + entries / 2, entries, "file", uses_lut=True))
    for index, (center, width) in enumerate(modality.windows):
        name = modality.window_names[index] if index < len(modality.window_names) else ""
        label = f"File window {index + 1}" + (f": {name}" if name else "") + f" (C {center:g}, W {width:g})"
        presets.append(WindowPreset(label, center, width, "file"))
    return _Source(values, modality.unit, low, high, full, tuple(presets), modality.inverted)


def _full_range(name: str, low: float, high: float) -> WindowPreset:
    """PS3.3's linear window that maps low..high onto 0..1 exactly, as the decoder's fallback does
    for a file without a window (center and width come out whole for whole-number bounds)."""
    return WindowPreset(name, (low + high) / 2 + 0.5, high - low + 1, "range")


def _grey_levels(image: LoadedImage) -> np.ndarray:
    """A PNG/JPEG's pixels back in its grey levels (the decoder scaled them to [0, 1])."""
    full_scale = 65535.0 if image.bits_stored == 16 else 255.0
    return image.pixels * np.float32(full_scale)


def _hu_presets() -> tuple[WindowPreset, ...]:
    return tuple(WindowPreset(f"{name} (HU: C {c:g}, W {w:g})", c, w, "HU") for name, (c, w) in HU_PRESETS.items())


def _histogram_presets(values: np.ndarray, inverted: bool, integral: bool) -> tuple[WindowPreset, ...]:
    """Radiograph presets from percentiles of the displayed brightness (a 1/16 sample is plenty),
    whole numbers for whole-number values (the sliders' step)."""
    sample = values[::4, ::4].ravel()
    presets = []
    for name, (dark, bright) in HISTOGRAM_PRESETS.items():
        # On a MONOCHROME1 image the brightest pixels have the lowest values.
        a, b = np.percentile(sample, [100 - dark, 100 - bright] if inverted else [dark, bright])
        center, width = (float(a) + float(b)) / 2, max(abs(float(b) - float(a)), 1.0)
        if integral:
            center, width = float(round(center)), float(round(width))
        presets.append(WindowPreset(f"{name} (this image's histogram)", center, width, "histogram"))
    return tuple(presets)
