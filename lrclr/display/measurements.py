"""Measurements on a radiograph: a distance, and the cardiothoracic ratio from two horizontal widths.

Every point is in the ORIGINAL image's pixels (continuous: 0..width), whatever the display's zoom,
flip or rotation. Millimetres need the pixel spacing: a DICOM's PixelSpacing (else
ImagerPixelSpacing, which is at the detector and so slightly magnified), or, for the NIH demo
cases, the original film's spacing in the NIH labels scaled to the size shown. Without one, lengths
are in pixels and say so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lrclr.imaging.decoding import LoadedImage

Point = tuple[float, float]

PIXELS = "pixels"


@dataclass(frozen=True)
class Spacing:
    """Millimetres per pixel of the image as loaded, DICOM order (between rows, between columns)."""

    row_mm: float
    column_mm: float
    source: str  # where it comes from, said beside every measurement

    def __post_init__(self) -> None:
        if not (self.row_mm > 0 and self.column_mm > 0 and math.isfinite(self.row_mm) and math.isfinite(self.column_mm)):
            raise ValueError(f"pixel spacing must be positive and finite, got {self.row_mm}, {self.column_mm}")


def scaled_spacing(original_mm: float, original_size: tuple[int, int], shown_size: tuple[int, int],
                   source: str) -> Spacing:
    """The spacing of an image resized from ``original_size`` (width, height) at ``original_mm``
    per pixel to ``shown_size``: each axis scaled by its own factor (the NIH release resized every
    film, whatever its shape, to a square)."""
    return Spacing(row_mm=original_mm * original_size[1] / shown_size[1],
                   column_mm=original_mm * original_size[0] / shown_size[0], source=source)


def image_spacing(image: LoadedImage, fallback: Spacing | None = None) -> Spacing | None:
    """The spacing of a loaded image: its DICOM header's (already scaled for an image downsampled
    on decoding), else ``fallback`` (a demo case's, from its labels), else None."""
    if image.pixel_spacing_mm is None:
        return fallback
    if "Pixel Spacing (mm)" in image.header:
        source = "DICOM PixelSpacing"
    else:  # the detector's spacing: the patient is magnified onto it (about 10 % on a PA chest)
        source = "DICOM ImagerPixelSpacing (at the detector, not corrected for magnification)"
    if image.decoded_scale > 1:
        source += f", x{image.decoded_scale} for the image downsampled on decoding"
    return Spacing(image.pixel_spacing_mm[0], image.pixel_spacing_mm[1], source)


@dataclass(frozen=True)
class Distance:
    start: Point  # original pixels
    end: Point
    pixels: float  # Euclidean length in original pixels
    millimetres: float | None  # None when no spacing is known
    spacing_source: str | None

    @property
    def unit(self) -> str:
        return "mm" if self.millimetres is not None else PIXELS

    @property
    def value(self) -> float:
        return self.millimetres if self.millimetres is not None else self.pixels

    def label(self) -> str:
        return f"{self.value:.1f} {self.unit}"


def distance(start: Point, end: Point, spacing: Spacing | None) -> Distance:
    dx, dy = end[0] - start[0], end[1] - start[1]
    mm = None if spacing is None else math.hypot(dx * spacing.column_mm, dy * spacing.row_mm)
    return Distance(_point(start), _point(end), math.hypot(dx, dy), mm, spacing.source if spacing else None)


@dataclass(frozen=True)
class Width:
    """A horizontal width: the horizontal extent of a line the reader drew (its vertical part is
    ignored, as the ratio's definition measures across the chest)."""

    start: Point
    end: Point
    pixels: float
    millimetres: float | None

    def label(self) -> str:
        return f"{self.millimetres:.1f} mm" if self.millimetres is not None else f"{self.pixels:.1f} {PIXELS}"


def width(start: Point, end: Point, spacing: Spacing | None) -> Width:
    pixels = abs(end[0] - start[0])
    return Width(_point(start), _point(end), pixels, None if spacing is None else pixels * spacing.column_mm)


@dataclass(frozen=True)
class CardiothoracicRatio:
    """Cardiac width over thoracic width (the widest horizontal diameters of the heart and of the
    thorax, inner rib margins); above 0.5 on a PA film is the usual cut for cardiomegaly. The
    ratio needs no spacing: both widths are horizontal on the same image."""

    cardiac: Width
    thoracic: Width

    @property
    def ratio(self) -> float | None:
        return self.cardiac.pixels / self.thoracic.pixels if self.thoracic.pixels > 0 else None

    def label(self) -> str:
        ratio = self.ratio
        return "CTR undefined (thoracic width 0)" if ratio is None else f"CTR {ratio:.2f}"


def cardiothoracic_ratio(cardiac: Width, thoracic: Width) -> CardiothoracicRatio:
    return CardiothoracicRatio(cardiac, thoracic)


def measurement_records(distances: list[Distance], ratio: CardiothoracicRatio | None,
                        spacing: Spacing | None) -> dict:
    """What the JSON export holds: every point in original pixels, lengths in mm where a spacing is
    known (and which), else in pixels, said so."""
    record: dict = {"unit": "mm" if spacing is not None else PIXELS, "coordinates": "original image pixels",
                    "pixel_spacing_mm": None if spacing is None else [spacing.row_mm, spacing.column_mm],
                    "pixel_spacing_source": None if spacing is None else spacing.source,
                    "distances": [_rounded(asdict(d)) for d in distances], "cardiothoracic_ratio": None}
    if ratio is not None:
        record["cardiothoracic_ratio"] = {"ratio": None if ratio.ratio is None else round(ratio.ratio, 4),
                                          "cardiac": _rounded(asdict(ratio.cardiac)),
                                          "thoracic": _rounded(asdict(ratio.thoracic))}
    return record


def _point(point: Point) -> Point:
    return float(point[0]), float(point[1])


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
