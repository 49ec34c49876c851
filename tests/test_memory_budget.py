"""Memory is set by the deployment's budgets, not by the file (issue #17).

Peak memory is measured in a fresh process (``ru_maxrss`` is a high-water mark, which earlier tests
in this process would already have raised).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image

from lrclr.imaging import load_image
from tests.conftest import REPO_ROOT

_MEASURE = r"""
import io, json, resource, sys
import torch
from lrclr.batch import BatchRun, ZipSource
from lrclr.config import tiny_config
from lrclr.model import LRCLRModel

torch.manual_seed(0)
model = LRCLRModel(tiny_config()).eval()
model.zero_shot([torch.rand(64, 64).numpy()], ["Effusion"])  # warm up: first-call allocations are not the image's
archive = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run = BatchRun(model, ZipSource(io.BytesIO(archive)), ["Effusion"], batch_size=8, thumbnail_px=64)
rows = [result.row for result in run.step()]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rise_mb": (after - before) / 1024, "errors": [r.error for r in rows if r.error],
                  "scored": sum(bool(r.probabilities) for r in rows)}))
"""


def _big_png(side: int, shade: int) -> bytes:
    """A side x side 8-bit PNG that compresses to almost nothing (every row the same gradient)."""
    row = (((np.arange(side) * 255) // side + shade) % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.broadcast_to(row, (side, side)).copy()).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_a_small_zip_of_49_megapixel_pngs_raises_peak_memory_by_at_most_500_mb(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for index in range(8):
            zipped.writestr(f"study/{index}.png", _big_png(7000, index))
    assert archive.stat().st_size < 600_000
    measured = subprocess.run([sys.executable, "-c", _MEASURE, str(archive)], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=600)
    assert measured.returncode == 0, measured.stderr
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["scored"] == 8
    assert result["peak_rise_mb"] <= 500, result


def test_an_image_over_the_budget_is_decoded_smaller_and_says_so():
    image = load_image(_big_png(4000, 0), name="big.png", max_decoded_pixels=4_000_000)
    assert image.pixels.shape == (2000, 2000) and image.decoded_scale == 2
    assert any("1/2 of its 4000 x 4000 pixels" in warning for warning in image.warnings)
    whole = load_image(_big_png(4000, 0), name="big.png")
    # Block means: the downsampled image is the full one averaged, not a different picture.
    assert abs(float(image.pixels.mean()) - float(whole.pixels.mean())) < 1e-3
