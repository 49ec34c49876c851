"""Reading radiographs (PNG, JPEG, DICOM) into one normalised grayscale array.

The output convention is the one a radiologist reads: float32 in [0, 1] with bone bright and air
dark, whatever the file stored (MONOCHROME1, a VOI window, 12 bits in a 16-bit PNG). Every failure
is a typed error from :mod:`lrclr.errors` whose message names the file and says what is wrong;
Pillow and pydicom exceptions never escape. Patient identifiers are kept out of ``header``,
warnings and error messages; they are returned only when the caller asks for them.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO


from lrclr.errors import (
    EmptyFileError,
    ImageReadError,
    UnsupportedFormatError,
)

from lrclr.imaging.decoding import DEFAULT_MAX_PIXELS, LoadedImage, read_error
from lrclr.imaging.dicom import load_dicom
from lrclr.imaging.pillow_files import load_pillow


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


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
        raise read_error(EmptyFileError, name, "the file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise read_error(UnsupportedFormatError, name,
                     f"this is not a PNG, JPEG or DICOM image ({_describe_content(data)})")
    if fmt == "dicom":
        return load_dicom(data, name, max_pixels, include_identifiers, max_decoded_pixels)
    return load_pillow(data, fmt, name, max_pixels, max_decoded_pixels)


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
            raise read_error(ImageReadError, name, "the file was not found") from exc
        except IsADirectoryError as exc:
            raise read_error(ImageReadError, name, "this is a folder, not an image file") from exc
        except OSError as exc:
            raise read_error(ImageReadError, name, f"the file could not be read ({exc.strerror})") from exc
    name = name or os.path.basename(str(getattr(source, "name", "") or "")) or None
    # Streamlit's UploadedFile is a BytesIO that an earlier widget may have read to the end.
    getvalue = getattr(source, "getvalue", None)
    try:
        data = getvalue() if callable(getvalue) else source.read()
    except (OSError, ValueError) as exc:
        raise read_error(ImageReadError, name, "the uploaded file could not be read") from exc
    if not isinstance(data, (bytes, bytearray)):
        raise read_error(ImageReadError, name, "the file was opened as text, not as binary data")
    return bytes(data), name


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
