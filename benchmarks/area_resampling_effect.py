"""How much the model's probabilities would move if its input were resized by area resampling.

    python -m benchmarks.area_resampling_effect --out-json area_resampling_effect.json

The model's letterbox (``lrclr.model.letterbox.letterbox_pixels``) resizes with torch's antialiased
bilinear filter, and the bundled models' cross-validated figures were measured with it. This scores
every demo case twice, once as shipped and once with OpenCV's ``INTER_AREA`` in its place, and
reports the largest change in any finding's probability. Above 1e-3 the model's input stays as it
is and area resampling is used for display only (``lrclr.display.operations``).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import torch

from benchmarks.report import emit, git_commit
from lrclr.model import letterbox as preprocess
from lrclr.demo import load_gallery
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.weights import DEFAULT_MODEL_DIR


def area_letterbox(pixels: np.ndarray, model_size: int, device="cpu"):
    """``letterbox_pixels`` with the resize done by cv2.INTER_AREA (the same geometry and padding)."""
    height, width = pixels.shape
    geometry = preprocess.letterbox_geometry((width, height), model_size)
    content_w, content_h = geometry.content_size
    resized = cv2.resize(np.ascontiguousarray(pixels, dtype=np.float32), (content_w, content_h),
                         interpolation=cv2.INTER_AREA)
    canvas = torch.zeros(1, model_size, model_size, dtype=torch.float32)
    top, left = geometry.pad_top, geometry.pad_left
    canvas[:, top:top + content_h, left:left + content_w] = torch.from_numpy(np.clip(resized, 0.0, 1.0))
    return canvas.to(device), geometry


def probabilities(model: LRCLRModel, image) -> np.ndarray:
    return np.array([f.probability for f in model.explain(model.encode_case(image), "").findings])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args(argv)
    model = LRCLRModel.from_pretrained(args.model, device="cpu")
    cases = {}
    for case in load_gallery():
        image = case.load_image()
        shipped = probabilities(model, image)
        with mock.patch.object(preprocess, "letterbox_pixels", area_letterbox):
            area = probabilities(model, image)
        cases[case.id] = float(np.abs(area - shipped).max())
        print(f"{case.id}: max |change| {cases[case.id]:.4f}")
    worst = max(cases.values())
    print(f"largest change in any probability: {worst:.4f}")
    emit({"benchmark": "area_resampling_effect", "commit": git_commit(),
          "created": dt.datetime.now(dt.timezone.utc).isoformat(), "model": args.model.name,
          "max_abs_probability_change": worst, "per_case": cases}, args.out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
