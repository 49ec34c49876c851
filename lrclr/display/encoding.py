"""Pictures as the browser receives them: PNG bytes and ``data:`` URIs, one encoder for every page.

Pillow, not OpenCV, encodes: it writes PNG and JPEG from the same image objects the overlays are
drawn on, and this module stays light (no plotly, no cv2) for the batch scorer's thumbnails.
"""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_bytes(image: Image.Image, compress_level: int = 6) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def data_uri(image: Image.Image, lossless: bool = False, jpeg_quality: int = 95) -> str:
    """``image`` as a data URI: PNG when ``lossless`` (fast compression: it is sent, not stored),
    else JPEG at ``jpeg_quality`` (grayscale stays one channel, colour becomes RGB)."""
    if lossless:
        return "data:image/png;base64," + base64.b64encode(png_bytes(image, compress_level=1)).decode("ascii")
    buffer = io.BytesIO()
    (image if image.mode in ("L", "RGB") else image.convert("RGB")).save(buffer, format="JPEG", quality=jpeg_quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
