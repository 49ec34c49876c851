"""Image operations for what the screen and the exports show, with OpenCV: area resampling, CLAHE and
outlines. Nothing here ever reaches the model's input.

OpenCV (the headless build: the same ``cv2`` API without GUI libraries, so a server needs no X11 or
GL) is the field's standard for these: ``INTER_AREA`` averages every source pixel into the smaller
image, so fine rib and vessel edges do not alias and no ringing halo appears beside a wire or a
clip, as it can with Lanczos; CLAHE is the contrast enhancement radiology viewers offer; contours
give a mask's outline at sub-pixel precision at any display scale. Pillow stays where it is the
better tool: decoding PNG and JPEG (EXIF rotation, 16-bit and palette modes, decoder-side
downscaling of JPEG), encoding the pictures sent to the browser, and drawing text with its font.

The model's own resize (``lrclr.model.letterbox.letterbox_pixels``) stays torch's antialiased bilinear:
area resampling there would move the bundled model's probabilities on the demo cases by up to 0.051
(``python -m benchmarks.area_resampling_effect``), and its validated figures were measured with the
current one.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# CLAHE as radiology viewers and most papers use it: each histogram bin of a tile is clipped at 2.0x
# the tile's mean bin count (the "clip limit"; higher lets local contrast grow further, 1.0 is
# nearly no change), the excess spread evenly, on an 8 x 8 grid of tiles blended bilinearly.
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = (8, 8)


def display_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(width, height) no larger than ``max_side`` on the longest side, the aspect ratio kept."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def area_resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``values`` (H, W) or (H, W, C) resized to ``size`` = (width, height) with area resampling when
    it shrinks (each output pixel the mean of the source pixels it covers). Growing an image has no
    area to average; it is bilinear then. Float input stays float, so no precision is lost before
    the picture is quantised."""
    height, width = values.shape[:2]
    if (width, height) == tuple(size):
        return values
    shrinking = size[0] <= width and size[1] <= height
    array = np.ascontiguousarray(values)
    if array.dtype == np.float64 or array.dtype == bool:
        array = array.astype(np.float32)
    return cv2.resize(array, tuple(int(s) for s in size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def downsample(values: np.ndarray, max_side: int) -> np.ndarray:
    """``values`` shrunk by area resampling to at most ``max_side`` on the longest side."""
    height, width = values.shape[:2]
    return area_resize(values, display_size((width, height), max_side))


def clahe(grey: np.ndarray, clip_limit: float = CLAHE_CLIP_LIMIT, tiles: tuple[int, int] = CLAHE_TILES) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of an 8-bit display image (H, W).

    Applied to what is shown, after window/level: the clip limit then means what it means in every
    viewer (it is relative to 256 bins; on 16-bit input OpenCV's bins are 65,536 and a 128 px tile
    would clip every bin at one count, equalising ranks rather than limiting contrast).
    """
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError(f"CLAHE takes an 8-bit grayscale image, got {grey.dtype} {grey.shape}")
    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tiles).apply(grey)


# Contour points go to OpenCV in fixed point with this many fractional bits, so an outline scaled
# from a large mask to a small display lands between pixels instead of snapping to them.
_SUBPIXEL_BITS = 4


def mask_outline(base: Image.Image, mask: np.ndarray, colour: tuple[int, int, int], thickness: int = 2) -> Image.Image:
    """The outline of a boolean ``mask`` (in the ORIGINAL image's pixels) drawn on ``base`` (the
    display, any size), antialiased. An outline leaves the film inside the finding visible, which a
    tint alone does not."""
    mask = np.asarray(mask, dtype=bool)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    picture = np.array(base.convert("RGB"))
    scale_x, scale_y = base.width / mask.shape[1], base.height / mask.shape[0]
    factor = 1 << _SUBPIXEL_BITS
    # A contour runs through pixel centres; +0.5 puts it at the same place on the display's grid.
    scaled = [np.round(np.stack([(c[:, 0, 0] + 0.5) * scale_x - 0.5, (c[:, 0, 1] + 0.5) * scale_y - 0.5], axis=-1)
                       * factor).astype(np.int32)[:, None, :] for c in contours]
    cv2.polylines(picture, scaled, isClosed=True, color=tuple(int(c) for c in colour), thickness=thickness,
                  lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    return Image.fromarray(picture)
