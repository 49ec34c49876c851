"""The CUDA path on a real GPU: bf16 autocast, agreement with float32 on the CPU, a real
out-of-memory error falling back to the CPU, and training with AMP.

Every test skips on machines without CUDA (CI has none); they run where a GPU is present.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.model_speed import agreement_with_cpu
from lrclr.config import tiny_config
from lrclr.demo import load_gallery
from lrclr.device import pick_device
from lrclr.model import LRCLRModel
from lrclr.weights import DEFAULT_MODEL_DIR
from train.cli import main as train_main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _demo_case(case_id: str = "nih-02-effusion"):
    case = {c.id: c for c in load_gallery()}[case_id]
    return case.load_image(), case.report_text()


def test_autocast_on_cuda_is_bf16_where_the_gpu_supports_it():
    info = pick_device("auto")
    assert info.device.type == "cuda" and info.name.startswith("CUDA: ")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert info.autocast_dtype == expected


def test_bundled_model_on_cuda_agrees_with_float32_on_the_cpu():
    image, report = _demo_case()
    gpu = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cuda")
    cpu = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    agreement = agreement_with_cpu(gpu.explain(image, report), cpu.explain(image, report))
    print(json.dumps(agreement))
    # bf16 keeps ~3 significant digits: scores may move by a few hundredths, and a region whose
    # selector score ties with its neighbour's may swap, but the picture must stay the same.
    assert agreement["max_abs_probability_diff"] < 0.05
    assert agreement["shared_region_cells"] >= agreement["regions"] - 3
    assert agreement["max_abs_word_attention_diff"] < 0.1


def test_a_real_cuda_out_of_memory_error_moves_the_model_to_the_cpu():
    image, report = _demo_case()
    model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cuda")
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    # Cap this process at what it already holds plus 1 MiB: the image tower's activations cannot fit.
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + 2**20) / total)
    try:
        explanation = model.explain(image, report)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert model.device_info.device.type == "cpu"
    assert model.fallback_notice and "ran out of memory" in model.fallback_notice
    reference = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu").explain(image, report)
    np.testing.assert_allclose([f.probability for f in explanation.findings],
                               [f.probability for f in reference.findings], atol=1e-5)


def test_training_runs_on_cuda_with_mixed_precision(tmp_path):
    run_dir = tmp_path / "run"
    model = json.dumps(tiny_config().to_dict())
    dataset = json.dumps({"kind": "phantoms", "n": 40, "size": 64})
    assert train_main(["pretrain", "--set", f"model={model}", "--set", f"dataset={dataset}",
                       "--set", "max_steps=15", "--set", "batch_size=8", "--set", "lr=0.003",
                       "--set", "tower_lr=0.003", "--set", "warmup_steps=2", "--set", "eval_every=5",
                       "--set", "checkpoint_every=5", "--set", "amp=true", "--set", f"output_dir={run_dir}",
                       "--device", "cuda"]) == 0
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
    info = json.loads((run_dir / "run_info.json").read_text())
    assert torch.cuda.get_device_name(0) in json.dumps(info)
