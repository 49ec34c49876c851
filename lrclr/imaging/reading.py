"""Reading radiographs (PNG, JPEG, DICOM) into one normalised grayscale array.

The output convention is the one a radiologist reads: float32 in [0, 1] with bone bright and air
dark, whatever the file stored (MONOCHROME1, a VOI window, 12 bits in a 16-bit PNG). Every failure
is a typed error from :mod:`lrclr.errors` whose message names the file and says what is wrong;
Pillow and pydicom exceptions never escape. Patient identifiers are kept out of ``header``,
warnings and error messages; they are returned only when the caller asks for them.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image, ImageOps
from pydicom.pixels import apply_modality_lut, apply_voi, pixel_array

from lrclr.errors import (
    CorruptImageError,
    EmptyFileError,
    ImageReadError,
    ImageTooLargeError,
    LRCLRError,
    NoPixelDataError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)

# Chest films are 4-9 MP (a 43x43 cm detector at 0.1 mm is ~18 MP); 60 MP leaves room for large
# mammography or stitched spine films while refusing decompression bombs before any allocation.
DEFAULT_MAX_PIXELS = 60_000_000

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# Pixel Data tag as it appears on disk (little and big endian); used to tell truncation from absence.
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the weights Pillow's "L" uses

# Shown by default: technical fields that cannot identify a patient (an allowlist, so a field a
# vendor adds never leaks by accident).
_SAFE_FIELDS = {
    "Modality": "Modality", "ViewPosition": "View Position", "BodyPartExamined": "Body Part Examined",
    "ImageLaterality": "Laterality", "Rows": "Rows", "Columns": "Columns",
    "PixelSpacing": "Pixel Spacing (mm)", "ImagerPixelSpacing": "Imager Pixel Spacing (mm)",
    "PhotometricInterpretation": "Photometric Interpretation", "BitsAllocated": "Bits Allocated",
    "BitsStored": "Bits Stored", "WindowCenter": "Window Center", "WindowWidth": "Window Width",
    "RescaleSlope": "Rescale Slope", "RescaleIntercept": "Rescale Intercept",
    "NumberOfFrames": "Number of Frames", "Manufacturer": "Manufacturer", "ManufacturerModelName": "Model",
    "StudyDescription": "Study Description", "SeriesDescription": "Series Description",
    "LossyImageCompression": "Lossy Compression",
}
# Hidden unless asked for. Age and sex are clinically useful but, with dates, re-identify patients.
_IDENTIFYING_FIELDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "PatientBirthDate",
    "PatientSex", "PatientAge", "PatientAddress", "AccessionNumber", "StudyID",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "DeviceSerialNumber", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime",
    "AcquisitionDateTime", "AcquisitionTime", "ContentTime", "PatientBirthTime", "OtherPatientNames",
    "PatientComments", "RequestingPhysician", "NameOfPhysiciansReadingStudy",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
)


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


def load_image(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    include_identifiers: bool = False,
    max_decoded_pixels: int | None = None,
) -> LoadedImage:
    """Decode a PNG, JPEG or DICOM given as a path, bytes or a binary file-like object.

    The format is decided from the content, never from the file name. An image of more than
    ``max_pixels`` is refused; one of more than ``max_decoded_pixels`` (None: no limit) is decoded
    at a whole-number fraction of its size (block means, as area resampling does), so that the
    memory it takes is set by the caller's budget rather than by the file.
    """
    data, name = _read_source(source, name)
    if not data:
        raise _error(EmptyFileError, name, "the file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise _error(UnsupportedFormatError, name,
                     f"this is not a PNG, JPEG or DICOM image ({_describe_content(data)})")
    if fmt == "dicom":
        return _load_dicom(data, name, max_pixels, include_identifiers, max_decoded_pixels)
    return _load_pillow(data, fmt, name, max_pixels, max_decoded_pixels)


def sniff_format(data: bytes) -> str | None:
    """Return "png", "jpeg" or "dicom" from the leading bytes, or None."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    if data[128:132] == b"DICM":
        return "dicom"
    return "dicom" if _looks_like_bare_dicom(data) else None


def _looks_like_bare_dicom(data: bytes) -> bool:
    # Files written without the 128-byte preamble (old scanners, some exports) start straight with a
    # group 0002 or 0008 element; require a plausible explicit VR or implicit length to avoid guessing.
    if len(data) < 8 or data[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = data[4:6]
    if vr.isalpha() and vr.isupper():
        return True
    return struct.unpack("<I", data[4:8])[0] < min(len(data), 1024)


# --- input handling ---------------------------------------------------------------------------


def _read_source(source: str | os.PathLike | bytes | BinaryIO, name: str | None) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name
    if isinstance(source, (str, os.PathLike)):
        name = name or os.path.basename(os.fspath(source))
        try:
            with open(source, "rb") as handle:
                return handle.read(), name
        except FileNotFoundError as exc:
            raise _error(ImageReadError, name, "the file was not found") from exc
        except IsADirectoryError as exc:
            raise _error(ImageReadError, name, "this is a folder, not an image file") from exc
        except OSError as exc:
            raise _error(ImageReadError, name, f"the file could not be read ({exc.strerror})") from exc
    name = name or os.path.basename(str(getattr(source, "name", "") or "")) or None
    # Streamlit's UploadedFile is a BytesIO that an earlier widget may have read to the end.
    getvalue = getattr(source, "getvalue", None)
    try:
        data = getvalue() if callable(getvalue) else source.read()
    except (OSError, ValueError) as exc:
        raise _error(ImageReadError, name, "the uploaded file could not be read") from exc
    if not isinstance(data, (bytes, bytearray)):
        raise _error(ImageReadError, name, "the file was opened as text, not as binary data")
    return bytes(data), name


def _error(cls: type[ImageReadError], name: str | None, message: str) -> ImageReadError:
    if name:
        return cls(f"{name}: {message}")
    return cls(message[:1].upper() + message[1:])


def _short_reason(exc: BaseException) -> str:
    # Library messages may quote element values, which could be patient data: drop quoted parts.
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "...", text)
    text = re.sub(r"\s*<[^>]*>", "", text)  # object reprs such as <_io.BytesIO object at 0x...>
    return text[:160] or type(exc).__name__


def _describe_content(data: bytes) -> str:
    signatures = {
        b"%PDF": "it looks like a PDF document", b"PK\x03\x04": "it looks like a ZIP archive",
        b"GIF8": "it looks like a GIF image", b"BM": "it looks like a BMP image",
        b"II*\x00": "it looks like a TIFF image", b"MM\x00*": "it looks like a TIFF image",
        b"\x00\x00\x00\x0cjP  ": "it looks like a JPEG 2000 image", b"\x1f\x8b": "it looks like a gzip archive",
    }
    for magic, description in signatures.items():
        if data.startswith(magic):
            return description
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "it looks like a WebP image"
    text = data[:2048].decode("utf-8", errors="replace")
    readable = sum(ch != "\ufffd" and (ch.isprintable() or ch in "\r\n\t") for ch in text)
    if readable >= 0.95 * len(text):  # tolerates a multi-byte character cut at the 2048th byte
        return "it looks like text"
    return "its contents are not recognised"


def _check_size(width: int, height: int, max_pixels: int, name: str | None) -> None:
    if width <= 0 or height <= 0:
        raise _error(CorruptImageError, name, f"the image declares an invalid size of {width} x {height} pixels")
    if width * height > max_pixels:
        raise _error(ImageTooLargeError, name,
                     f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), "
                     f"more than the {max_pixels / 1e6:.0f} megapixels allowed")


def _scale_for(width: int, height: int, max_decoded_pixels: int | None) -> int:
    """The smallest whole factor that brings width x height within the budget."""
    if not max_decoded_pixels or width * height <= max_decoded_pixels:
        return 1
    return math.ceil(math.sqrt(width * height / max_decoded_pixels))


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Each factor x factor block averaged (edge rows and columns that fill no block dropped), in
    the input's dtype. The float accumulation is buffered by numpy, never a full-size copy."""
    height, width = values.shape[0] // factor, values.shape[1] // factor
    blocks = values[:height * factor, :width * factor].reshape(height, factor, width, factor, *values.shape[2:])
    means = blocks.mean(axis=(1, 3), dtype=np.float32)
    return np.rint(means).astype(values.dtype) if np.issubdtype(values.dtype, np.integer) else means.astype(values.dtype)


def _downsample_note(factor: int, width: int, height: int) -> list[str]:
    if factor == 1:
        return []
    return [f"shown and scored at 1/{factor} of its {width} x {height} pixels (this deployment's memory budget "
            "for one image)"]


# --- PNG and JPEG ---------------------------------------------------------------------------


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


def _load_pillow(data: bytes, fmt: str, name: str | None, max_pixels: int,
                 max_decoded_pixels: int | None = None) -> LoadedImage:
    label = fmt.upper()
    size = _declared_size(data, fmt)
    if size is not None:
        _check_size(*size, max_pixels, name)  # before Pillow allocates anything
    try:
        image = Image.open(io.BytesIO(data), formats=[label])
        _check_size(*image.size, max_pixels, name)
        stored_size = image.size
        factor = _scale_for(*stored_size, max_decoded_pixels)
        if factor > 1 and fmt == "jpeg":  # the decoder itself works at 1/2, 1/4 or 1/8 scale
            image.draft(image.mode, (stored_size[0] // factor, stored_size[1] // factor))
        frames = getattr(image, "n_frames", 1)
        image.load()
        mode = image.mode
        image = _reduced(image, _scale_for(*image.size, max_decoded_pixels))
        factor = round(stored_size[0] / image.size[0])
        upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise _error(ImageTooLargeError, name, f"the image is larger than allowed ({_short_reason(exc)})") from exc
    except LRCLRError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise _error(CorruptImageError, name, f"the {label} file is truncated or damaged: "
                     "its header could not be read") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error ...
        raise _error(CorruptImageError, name,
                     f"the {label} file is truncated or damaged: {_short_reason(exc)}") from exc
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
                       warnings=tuple(warnings + notes + _downsample_note(factor, stored_width, stored_height)),
                       colourfulness=_colourfulness(upright), decoded_scale=factor)


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """``image`` downsampled by block means; palette and 1-bit images by taking every factor-th pixel
    after conversion (their values are not intensities to average)."""
    if factor == 1:
        return image
    if image.mode.startswith("I;16"):
        values = _block_mean(np.asarray(image), factor)
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
        return _min_max(np.asarray(image, dtype=np.float64)), 32, []
    if mode == "1":
        return np.asarray(image, dtype=np.float32), 1, []
    if mode == "L":
        return np.asarray(image, dtype=np.float32) / 255.0, 8, []
    has_alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64) / 255.0
    luminance = rgba[..., :3] @ _LUMA
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


def _min_max(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float64))
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


# --- DICOM ----------------------------------------------------------------------------------


def _load_dicom(data: bytes, name: str | None, max_pixels: int, include_identifiers: bool,
                max_decoded_pixels: int | None = None) -> LoadedImage:
    ds = _parse_dicom(data, name)
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if _looks_truncated(ds, data):
            raise _error(CorruptImageError, name,
                         "the DICOM file is truncated or damaged: it ends before the image data is complete")
        if "Rows" in ds:  # an image header without its image: stripped on export or cut short
            raise _error(NoPixelDataError, name, "this DICOM file describes an image but contains no pixel "
                         "data (it may have been exported without pixels or cut short)")
        raise _error(NoPixelDataError, name, f"this DICOM file contains no image ({_sop_class(ds) or 'no pixel data'})")
    rows, columns, frames = _geometry(ds, name)
    _check_size(columns, rows, max_pixels, name)
    stored = _decode_first_frame(ds, name)
    factor = _scale_for(columns, rows, max_decoded_pixels)
    if factor > 1:  # before the display pipeline's float copies; palette indices are not averaged
        palette = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR"
        stored = stored[::factor, ::factor].copy() if palette else _block_mean(stored, factor)
    try:
        pixels, bits, notes, window = _dicom_to_unit(stored, ds)
    except Exception as exc:  # e.g. a palette or LUT that does not fit the pixel values
        raise _error(CorruptImageError, name,
                     f"the DICOM image could not be converted for display: {_short_reason(exc)}") from exc
    warnings = [f"multi-frame DICOM ({frames} frames): showing frame 1"] if frames > 1 else []
    warnings += _downsample_note(factor, columns, rows)
    header = _safe_header(ds)
    header["Window Applied"] = window
    return LoadedImage(
        pixels=pixels, original_size=(pixels.shape[1], pixels.shape[0]), source_format="dicom",
        bits_stored=bits, header=header,
        identifiers=_identifiers(ds) if include_identifiers else {},
        warnings=tuple(warnings + notes), pixel_spacing_mm=_scaled_spacing(_pixel_spacing(ds), factor),
        decoded_scale=factor,
    )


def _parse_dicom(data: bytes, name: str | None) -> pydicom.Dataset:
    has_preamble = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
    except Exception as exc:
        raise _error(CorruptImageError, name, f"the DICOM file is truncated or damaged: {_short_reason(exc)}") from exc
    if not has_preamble and "Rows" not in ds and not any(k in ds for k in _PIXEL_KEYWORDS):
        # A forced parse accepts almost anything; without image elements it was not DICOM after all.
        raise _error(UnsupportedFormatError, name,
                     "this is not a PNG, JPEG or DICOM image (its contents are not recognised)")
    if "TransferSyntaxUID" not in ds.file_meta:
        # Preamble-less files often lack file meta; the encoding pydicom detected stands in for it.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if implicit
            else pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
    return ds


def _looks_truncated(ds: pydicom.Dataset, data: bytes) -> bool:
    # pydicom drops an unfinished Pixel Data element with only a warning, so a cut-off file would
    # otherwise look like one that never had an image.
    if any(tag in data for tag in _PIXEL_DATA_TAGS):
        return True
    if not len(ds):
        return True
    last = ds.get_item(max(ds.keys()))
    value, length = getattr(last, "value", None), getattr(last, "length", 0)
    return isinstance(value, bytes) and length != 0xFFFFFFFF and len(value) < length


def _geometry(ds: pydicom.Dataset, name: str | None) -> tuple[int, int, int]:
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise _error(CorruptImageError, name,
                     "the DICOM file is damaged: its image size (Rows/Columns) is missing or invalid") from exc
    return rows, columns, max(frames, 1)


def _decode_first_frame(ds: pydicom.Dataset, name: str | None) -> np.ndarray:
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = pydicom.pixels.get_decoder(syntax)
    except NotImplementedError as exc:
        raise _error(UnsupportedCompressionError, name,
                     f"the image is stored with an unknown transfer syntax ({syntax.name})") from exc
    if not decoder.is_available:
        raise _error(UnsupportedCompressionError, name,
                     f"the image is compressed as {syntax.name}, which this installation cannot decode")
    try:
        # Only the first frame is decoded: a 200-frame series must not cost 200 frames of memory.
        return pixel_array(ds, index=0)
    except Exception as exc:
        raise _error(CorruptImageError, name, f"the DICOM file is truncated or damaged: {_short_reason(exc)}") from exc


def _dicom_to_unit(stored: np.ndarray, ds: pydicom.Dataset) -> tuple[np.ndarray, int, list[str], str]:
    """Apply the display pipeline (modality LUT, VOI, photometric) and scale to [0, 1]."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    full_scale = 2.0**bits - 1
    if photometric == "PALETTE COLOR":
        stored = pydicom.pixels.apply_color_lut(stored, ds)
        full_scale = float(np.iinfo(stored.dtype).max)  # the palette's entries are 8 or 16 bit
    if stored.ndim == 3:  # colour is already display-ready: no window, only luminance
        luminance = np.clip(stored[..., :3].astype(np.float64) @ _LUMA / full_scale, 0.0, 1.0)
        return luminance.astype(np.float32), bits, ["colour DICOM converted to grayscale"], "none (colour image)"
    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception:
        values = stored.astype(np.float64)  # a broken rescale still leaves a viewable image
    unit, window, notes = _apply_voi(values, ds)
    # MONOCHROME1 stores bone dark; a Presentation LUT Shape of INVERSE asks for the same flip.
    inverse = str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE"
    if photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and inverse):
        unit = 1.0 - unit
    return unit.astype(np.float32), bits, notes, window


def _apply_voi(values: np.ndarray, ds: pydicom.Dataset) -> tuple[np.ndarray, str, list[str]]:
    """Values in [0, 1] after the file's VOI LUT or window, else its full range."""
    if "VOILUTSequence" not in ds and not ("WindowCenter" in ds and "WindowWidth" in ds):
        return _min_max(values), "none in the file: full pixel range", []
    try:
        result = _file_voi(values, ds)
    except Exception:
        result = None  # an unusable VOI must not make the image unreadable
    if result is None:
        return (_min_max(values), "none: full pixel range",
                ["the file's display window could not be used: showing the full pixel range"])
    return result[0], result[1], []


def _file_voi(values: np.ndarray, ds: pydicom.Dataset) -> tuple[np.ndarray, str] | None:
    # The LUT is preferred over the window, as pydicom and most viewers do when both are present.
    if ds.get("VOILUTSequence"):
        lut = _lut_values(ds.VOILUTSequence[0])
        low, high = float(lut.min()), float(lut.max())
        if high > low:
            # pydicom indexes the LUT with the values; integral floats from a rescale are exact ints.
            indices = values.astype(np.int64) if np.array_equal(values, np.round(values)) else values
            mapped = np.asarray(apply_voi(indices, ds, index=0), dtype=np.float64)
            return np.clip((mapped - low) / (high - low), 0.0, 1.0), "VOI LUT from the file"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first_number(ds.WindowCenter), _first_number(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper()
        windowed = _window(values, center, width, function)
        if windowed is not None:
            return windowed, f"window from the file (center {center:g}, width {width:g})"
    return None


def _lut_values(item: pydicom.Dataset) -> np.ndarray:
    element = item["LUTData"]
    if isinstance(element.value, (bytes, bytearray)):
        entry_bits = int(item.LUTDescriptor[2])
        return np.frombuffer(element.value, dtype="<u2" if entry_bits > 8 else "u1")
    return np.atleast_1d(np.asarray(element.value, dtype=np.float64))


def _first_number(value: object) -> float:
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        value = value[0]  # several windows may be stored; the first is the default view
    return float(value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray | None:
    """DICOM PS3.3 C.11.2.1 VOI functions, output scaled to [0, 1]; None if the width is invalid."""
    if function == "SIGMOID":
        return None if width <= 0 else 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return None if width <= 0 else np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width < 1:
        return None
    if width == 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _scaled_spacing(spacing: tuple[float, float] | None, factor: int) -> tuple[float, float] | None:
    """Millimetres per decoded pixel: a downsampled pixel spans ``factor`` stored ones."""
    return None if spacing is None else (spacing[0] * factor, spacing[1] * factor)


def _pixel_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            row, column = (float(v) for v in ds[keyword].value)
        except Exception:
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def _sop_class(ds: pydicom.Dataset) -> str:
    # Only a registered class name is shown: a bare UID string tells a reader nothing.
    try:
        uid = ds.get("SOPClassUID")
        name = getattr(uid, "name", "")
    except Exception:
        return ""
    return "" if not name or name == str(uid) else name


def _safe_header(ds: pydicom.Dataset) -> dict[str, str]:
    header = {"Transfer Syntax": ds.file_meta.TransferSyntaxUID.name}
    if sop_class := _sop_class(ds):
        header["SOP Class"] = sop_class
    for keyword, label in _SAFE_FIELDS.items():
        try:
            value = ds[keyword].value if keyword in ds else None
        except Exception:
            continue
        text = _value_text(value)
        if keyword == "LossyImageCompression":
            text = {"00": "no", "01": "yes"}.get(text, text)
        if text:
            header[label] = text
    return header


def _value_text(value: object) -> str:
    if value is None or isinstance(value, (bytes, bytearray)):
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        return ", ".join(str(item) for item in value)[:200]
    return str(value).strip()[:200]


def _identifiers(ds: pydicom.Dataset) -> dict[str, str]:
    # Decoded from the raw bytes, bypassing pydicom's value validation, whose warnings quote the
    # value and would copy a patient's name into the logs.
    encodings = pydicom.charset.convert_encodings(ds.get("SpecificCharacterSet") or "ISO_IR 6")
    found: dict[str, str] = {}
    for keyword in _IDENTIFYING_FIELDS:
        if keyword not in ds:
            continue
        element = ds.get_item(keyword)
        value = element.value
        if isinstance(value, bytes):
            value = pydicom.charset.decode_bytes(value, encodings, set(b"\\^="))
        text = _value_text(value).strip(" \x00")
        if text:
            found[keyword] = text
    return found
