"""Peak memory of one Batch chunk of huge images, with the decode budget and without (issue #17).

    python -m benchmarks.huge_image_memory

Builds a ZIP of eight 7000 x 7000 8-bit PNGs that compress to almost nothing (every row the same
gradient: the "small upload, gigabytes decoded" case), then in a fresh process per setting scores
one chunk of it through the Batch page's code path (``lrclr.batch.scoring.BatchRun`` on a ``ZipSource``,
thumbnails on, a tiny random model so the model itself costs nothing) and reports the rise of peak
RSS (``ru_maxrss``) over the process's state after the model's first call. ``tests/imaging/test_memory_budget.py``
checks the budgeted figure against the issue's 500 MB.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SIDE, IMAGES = 7000, 8

_MEASURE = r"""
import io, json, resource, sys
import torch
import lrclr.batch.sources
from lrclr.batch.scoring import BatchRun
from lrclr.batch.sources import ZipSource
from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel

if sys.argv[2] == "no-budget":
    lrclr.batch.sources.BATCH_DECODED_PIXELS = None
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


def big_png(side: int, shade: int) -> bytes:
    """A side x side 8-bit PNG that compresses to almost nothing (every row the same gradient)."""
    row = (((np.arange(side) * 255) // side + shade) % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.broadcast_to(row, (side, side)).copy()).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_archive(path: Path, side: int = SIDE, images: int = IMAGES) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for index in range(images):
            zipped.writestr(f"study/{index}.png", big_png(side, index))
    return path


def measure(archive: Path, budget: bool = True) -> dict:
    """{"peak_rise_mb", "errors", "scored"} of one chunk, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(archive), "budget" if budget else "no-budget"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        archive = write_archive(Path(folder) / "huge.zip")
        result = {"zip_bytes": archive.stat().st_size, "images": IMAGES, "side_px": SIDE,
                  "with_budget": measure(archive, True), "without_budget": measure(archive, False)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
