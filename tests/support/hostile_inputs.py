"""The hostile-input catalog (issue #8): every odd file and report a user may hand the tool.

Each image case says what must happen: it works (the image is scored), or it fails with a message
containing ``expect``. Built in memory from the fixtures in tests/data (sources in SOURCES.md).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset

from tests.support.paths import TEST_DATA
from tests.support.images import dicom_bytes, encode, ramp

GRAY8 = TEST_DATA / "nih_00000075_128_gray8.png"
MONO2 = TEST_DATA / "siim_pneumothorax_example.dcm"


@dataclass(frozen=True)
class HostileImage:
    name: str  # the file name it is uploaded or stored as
    data: bytes
    expect: str | None  # None: it must work; else a fragment of the error message


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _gray() -> Image.Image:
    return Image.open(GRAY8).convert("L")


def _dicom_without_pixels() -> bytes:
    ds = pydicom.dcmread(MONO2)
    del ds.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _dicom_with_voi_lut() -> bytes:
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.add_new(0x00283006, "US", [0] * 2048 + [4095] * 2048)
    return dicom_bytes(ramp(64, 64), BitsStored=12, HighBit=11, VOILUTSequence=[lut])


def hostile_images() -> list[HostileImage]:
    png = encode(_gray(), "PNG")
    jpeg = encode(_gray(), "JPEG", quality=90)
    corrupt_png = png[:33] + bytes(len(png) - 45) + png[-12:]  # header intact, image data zeroed
    grey = np.asarray(_gray())
    return [
        HostileImage("truncated.png", png[:60], "truncated.png"),
        HostileImage("corrupt.png", corrupt_png, "corrupt.png"),
        HostileImage("truncated.jpg", jpeg[: len(jpeg) // 3], "truncated.jpg"),
        HostileImage("truncated.dcm", (TEST_DATA / "truncated_siim_20k.dcm").read_bytes(), "truncated.dcm"),
        HostileImage("zero-bytes.png", b"", "the file is empty"),
        HostileImage("notes.png", (TEST_DATA / "notes.png").read_bytes(), "not a PNG, JPEG or DICOM"),
        HostileImage("really-a-png.dcm", png, None),  # wrong extension: read by content
        HostileImage("really-a-jpeg.png", jpeg, None),
        HostileImage("bomb-40000.png", _png_header(40000, 40000), "40000 x 40000"),
        HostileImage("gray16.png", (TEST_DATA / "nih_00000075_128_gray16.png").read_bytes(), None),
        HostileImage("rgba.png", (TEST_DATA / "nih_00000075_128_rgba.png").read_bytes(), None),
        HostileImage("palette.png", encode(_gray().convert("P"), "PNG"), None),
        HostileImage("cmyk.jpg", encode(Image.fromarray(grey).convert("CMYK"), "JPEG"), None),
        HostileImage("multi-frame.dcm", dicom_bytes(np.stack([ramp(64, 64), ramp(64, 64)[::-1]])), None),
        HostileImage("no-pixel-data.dcm", _dicom_without_pixels(), "no pixel data"),
        HostileImage("voi-lut.dcm", _dicom_with_voi_lut(), None),
    ]


# Reports: each must be read without a traceback; the text the model sees is what was given, or,
# over the length limit, nothing, with a message that says why.
HOSTILE_REPORTS: dict[str, bytes] = {
    "empty": b"",
    # Within the length limit but far past what the text tower reads.
    "15k-characters": ("Mild cardiomegaly. Small left pleural effusion. " * 320)[:15_000].encode(),
    # Over the length limit (lrclr.reports.text.MAX_REPORT_CHARS): refused with a message, never read.
    "100k-characters": ("Mild cardiomegaly. Small left pleural effusion. " * 2100)[:100_000].encode(),
    "binary": bytes(range(256)) * 8,
    "right-to-left": "\u05e9\u05d3\u05d5\u05ea \u05e8\u05d9\u05d0\u05d5\u05ea \u05e0\u05e7\u05d9\u05d9\u05dd. "
                     "\u0627\u0646\u0635\u0628\u0627\u0628 \u062c\u0646\u0628\u064a \u0623\u064a\u0633\u0631. "
                     "\u202eeffusion\u202c".encode("utf-8"),
    "emoji-only": "🫁🫀💔🩻 🫁🫁".encode("utf-8"),
    "html-script": b'<script>alert(1)</script><img src=x onerror="alert(2)"> Effusion <b>left</b>.',
}
