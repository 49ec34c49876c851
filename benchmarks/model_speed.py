"""Model speed against its floor: what LRCLR's regions and interaction cost on top of the towers.

    python -m benchmarks.model_speed --repeats 20 --out-json docs/benchmarks/model_speed.json

Measured in one process, on one case (a bundled demo radiograph and its report), warm:

* floor: the image tower's and the text tower's forward pass alone, on already prepared inputs;
* ``explain`` of the bundled LRCLR model (decode-free: preprocessing, both towers, projections,
  region selection, interaction, 14 zero-shot findings, word spans), and its ratio to the floor;
* the same for the bundled global-only baseline, and LRCLR/baseline;
* batch zero-shot throughput (images/s) at batch 1, 8 and 32 against the image tower alone on the
  same batch (the throughput floor);
* cold model load in a fresh process; peak resident memory of this process;
* on a GPU, also batch 64, and how far its reduced-precision (autocast) explanation is from the
  float32 CPU one of the same case.

Medians of ``--repeats`` runs; every ratio compares numbers taken in the same run, since these
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import emit, torch_run_header
from lrclr.demo import load_gallery
from lrclr.model.device import PRECISIONS, autocast
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.letterbox import prepare_images
from lrclr.bundled import BASELINE_MODEL_DIR, DEFAULT_MODEL_DIR

BASELINE_DIR = BASELINE_MODEL_DIR
BATCH_SIZES = (1, 8, 32)
DEFAULT_CASE = "nih-02-effusion"


def median_seconds(run, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tower_floor(model: LRCLRModel, image, report: str, repeats: int) -> float:
    """Both towers' forward alone: the cost no design built on these towers can avoid."""
    pixels, _ = prepare_images([image], model.config.image_size, model.device_info.device)
    batch = model.tokenize([report], 512).to(model.device_info.device)

    @torch.inference_mode()
    def run():
        with autocast(model.device_info):
            model.image_tower(pixels)
            model.text_tower(batch.input_ids, batch.attention_mask)
        _synchronize(model)

    return median_seconds(run, repeats)


def explain_time(model: LRCLRModel, image, report: str, repeats: int) -> float:
    def run():
        model.explain(image, report)
        _synchronize(model)
    return median_seconds(run, repeats)


def throughput(model: LRCLRModel, images: list, batch_size: int, repeats: int) -> dict:
    """Images/s of ``zero_shot`` (preprocessing included) and of the image tower alone."""
    batch = (images * (batch_size // len(images) + 1))[:batch_size]
    pixels, _ = prepare_images(batch, model.config.image_size, model.device_info.device)

    @torch.inference_mode()
    def tower():
        with autocast(model.device_info):
            model.image_tower(pixels)
        _synchronize(model)

    def zero_shot():
        model.zero_shot(batch)
        _synchronize(model)

    runs = max(3, repeats // batch_size)
    tower_s, zero_shot_s = median_seconds(tower, runs, 1), median_seconds(zero_shot, runs, 1)
    return {"batch": batch_size, "zero_shot_images_per_s": batch_size / zero_shot_s,
            "image_tower_images_per_s": batch_size / tower_s, "ratio_to_tower": tower_s / zero_shot_s}


def cold_load_seconds(folder: Path, device: str) -> dict:
    """A fresh interpreter: imports, then ``from_pretrained`` (timed separately)."""
    code = ("import time; t0 = time.perf_counter(); from lrclr.model.lrclr_model import LRCLRModel; t1 = time.perf_counter(); "
            f"LRCLRModel.from_pretrained({str(folder)!r}, device={device!r}); t2 = time.perf_counter(); "
            "print(t1 - t0, t2 - t1)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    return {"process_total_s": time.perf_counter() - start, "imports_s": float(out[0]),
            "from_pretrained_s": float(out[1])}


def agreement_with_cpu(gpu_explanation, cpu_explanation) -> dict:
    """How far a reduced-precision GPU explanation is from the float32 CPU one of the same case."""
    gpu_p = np.array([f.probability for f in gpu_explanation.findings])
    cpu_p = np.array([f.probability for f in cpu_explanation.findings])
    gpu_cells = {r.cell for r in gpu_explanation.regions}
    cpu_cells = {r.cell for r in cpu_explanation.regions}
    attention_diffs = [np.abs(np.array(g.region_attention) - np.array(c.region_attention)).max()
                       for g, c in zip(gpu_explanation.words, cpu_explanation.words)
                       if g.region_attention is not None and c.region_attention is not None]
    return {
        "max_abs_probability_diff": float(np.abs(gpu_p - cpu_p).max()),
        "findings_rank_order_equal": bool((np.argsort(-gpu_p) == np.argsort(-cpu_p)).all()),
        "shared_region_cells": len(gpu_cells & cpu_cells), "regions": len(cpu_cells),
        "max_abs_word_attention_diff": float(max(attention_diffs)) if attention_diffs else None,
    }


def _synchronize(model: LRCLRModel) -> None:
    if model.device_info.device.type == "cuda":
        torch.cuda.synchronize()


def measure(device: str, precision: str, repeats: int, case_id: str) -> dict:
    cases = {case.id: case for case in load_gallery()}
    case = cases[case_id]
    image, report = case.load_image(), case.report_text()
    lrclr = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device=device, precision=precision)
    baseline = LRCLRModel.from_pretrained(BASELINE_DIR, device=device, precision=precision)
    floor = tower_floor(lrclr, image, report, repeats)
    explain = explain_time(lrclr, image, report, repeats)
    baseline_explain = explain_time(baseline, image, report, repeats)
    batch_images = [c.load_image() for c in cases.values()]
    on_gpu = lrclr.device_info.device.type != "cpu"
    batch_sizes = BATCH_SIZES + ((64,) if on_gpu else ())
    agreement = None
    if on_gpu:
        cpu_model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
        agreement = agreement_with_cpu(lrclr.model.explain(image, report), cpu_model.explain(image, report))
        gpu_scores = lrclr.model.zero_shot(batch_images).probabilities
        agreement["zero_shot_max_abs_probability_diff_over_gallery"] = float(
            np.abs(gpu_scores - cpu_model.zero_shot(batch_images).probabilities).max())
        del cpu_model
    return {
        "device": lrclr.device_info.name, "case": case_id, "repeats": repeats,
        "precision": precision, "autocast": str(lrclr.device_info.autocast_dtype),
        "floor_towers_s": floor, "explain_s": explain, "explain_ratio_to_floor": explain / floor,
        "baseline_explain_s": baseline_explain, "lrclr_to_baseline_ratio": explain / baseline_explain,
        "throughput": [throughput(lrclr, batch_images, size, repeats) for size in batch_sizes],
        "cold_load": cold_load_seconds(DEFAULT_MODEL_DIR, device),
        "agreement_with_cpu_float32": agreement,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if lrclr.device_info.device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda or cpu")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="bf16: autocast on a GPU (the CPU always runs float32)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--case", default=DEFAULT_CASE, help="demo case id")
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    result = {**torch_run_header("model_speed", argv), **measure(args.device, args.precision, args.repeats, args.case)}
    emit(result, args.out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
