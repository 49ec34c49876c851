"""PNG and JPEG radiographs through Pillow, which is the better tool here than OpenCV: it reads 16-bit
PNGs, palettes, transparency and EXIF orientation, checks the declared size before decoding, and
lets the JPEG decoder itself work at 1/2, 1/4 or 1/8 scale for images over the memory budget.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, ImageOps

from lrclr.errors import (
    CorruptImageError,
    ImageTooLargeError,
    LRCLRError,
)

from lrclr.imaging.decoding import (
    LUMA, LoadedImage, block_mean, check_size, decoded_scale_for, downsample_note, min_max, read_error, short_reason,
)


def _declared_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) read from the PNG IHDR or JPEG SOF header, without decoding any pixels."""
    if fmt == "png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        return None
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return None


def load_pillow(data: bytes, fmt: str, name: str | None, max_pixels: int,
                 max_decoded_pixels: int | None = None) -> LoadedImage:
    label = fmt.upper()
    size = _declared_size(data, fmt)
    if size is not None:
        check_size(*size, max_pixels, name)  # before Pillow allocates anything
    try:
        # Image.Image, not the ImageFile that open() returns: _reduced() may give a resized copy
        image: Image.Image = Image.open(io.BytesIO(data), formats=[label])
        check_size(*image.size, max_pixels, name)
        stored_size = image.size
        factor = decoded_scale_for(*stored_size, max_decoded_pixels)
        if factor > 1 and fmt == "jpeg":  # the decoder itself works at 1/2, 1/4 or 1/8 scale
            image.draft(image.mode, (stored_size[0] // factor, stored_size[1] // factor))
        frames = getattr(image, "n_frames", 1)
        image.load()
        mode = image.mode
        image = _reduced(image, decoded_scale_for(*image.size, max_decoded_pixels))
        factor = round(stored_size[0] / image.size[0])
        upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise read_error(ImageTooLargeError, name, f"the image is larger than allowed ({short_reason(exc)})") from exc
    except LRCLRError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise read_error(CorruptImageError, name, f"the {label} file is truncated or damaged: "
                     "its header could not be read") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error ...
        raise read_error(CorruptImageError, name,
                     f"the {label} file is truncated or damaged: {short_reason(exc)}") from exc
    warnings: list[str] = []
    if frames > 1:
        warnings.append(f"animated or multi-page {label} ({frames} frames): showing frame 1")
    if upright.size != image.size:
        warnings.append("rotated upright according to the file's EXIF orientation tag")
    pixels, bits, notes = _pillow_to_unit(upright)
    width, height = upright.size
    rotated = upright.size != image.size
    stored_width, stored_height = stored_size[::-1] if rotated else stored_size
    header = {"Format": label, "Color Mode": mode, "Rows": str(stored_height),
              "Columns": str(stored_width), "Bits Stored": str(bits)}
    return LoadedImage(pixels=pixels, original_size=(width, height), source_format=fmt,
                       bits_stored=bits, header=header,
                       warnings=tuple(warnings + notes + downsample_note(factor, stored_width, stored_height)),
                       colourfulness=_colourfulness(upright), decoded_scale=factor)


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """``image`` downsampled by block means; palette and 1-bit images by taking every factor-th pixel
    after conversion (their values are not intensities to average)."""
    if factor == 1:
        return image
    if image.mode.startswith("I;16"):
        values = block_mean(np.asarray(image), factor)
        return Image.fromarray(values)  # uint16 comes back as I;16
    if image.mode in ("1", "P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else
                              "L" if image.mode == "1" else "RGB")
    return image.reduce(factor)


def _pillow_to_unit(image: Image.Image) -> tuple[np.ndarray, int, list[str]]:
    """Luminance in [0, 1], the bit depth used for scaling, and notes for the user."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        return _high_bit_depth_to_unit(np.asarray(image))
    if mode == "F":
        return min_max(np.asarray(image, dtype=np.float64)), 32, []
    if mode == "1":
        return np.asarray(image, dtype=np.float32), 1, []
    if mode == "L":
        return np.asarray(image, dtype=np.float32) / 255.0, 8, []
    has_alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64) / 255.0
    luminance = rgba[..., :3] @ LUMA
    notes = []
    if has_alpha and rgba[..., 3].min() < 1.0:
        # Transparent areas carry no image; black matches the air around a radiograph.
        luminance = luminance * rgba[..., 3]
        notes.append("transparent areas of the image are shown as black")
    return np.clip(luminance, 0.0, 1.0).astype(np.float32), 8, notes


def _colourfulness(image: Image.Image) -> float:
    """Mean max-min spread of the RGB channels on a thumbnail (cheap on any image size)."""
    if image.mode in ("1", "L", "LA", "I", "F") or image.mode.startswith("I;16"):
        return 0.0
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((256, 256))
    rgb = np.asarray(thumbnail, dtype=np.float32) / 255.0
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1)))


def _high_bit_depth_to_unit(values: np.ndarray) -> tuple[np.ndarray, int, list[str]]:
    # 16-bit PNGs exported from DICOM often hold 10-14 bit data; dividing by 65535 would leave the
    # image nearly black, so scale by the smallest even bit depth that holds the brightest value.
    values = np.clip(values.astype(np.float64), 0, None)
    peak = int(values.max()) if values.size else 0
    bits = min(16, max(8, peak.bit_length() + peak.bit_length() % 2))
    notes = [] if bits >= 16 else [f"16-bit image with values up to {peak}: scaled as {bits}-bit data"]
    return (np.clip(values / (2**bits - 1), 0.0, 1.0)).astype(np.float32), bits, notes
