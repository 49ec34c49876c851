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
from lrclr.model.config import tiny_config
from lrclr.demo import load_gallery
from lrclr.model.device import pick_device
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.bundled import DEFAULT_MODEL_DIR
from train.cli import main as train_main

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _demo_case(case_id: str = "nih-02-effusion"):
    case = {c.id: c for c in load_gallery()}[case_id]
    return case.load_image(), case.report_text()


def test_float32_by_default_and_bf16_when_asked():
    info = pick_device("auto")
    assert info.device.type == "cuda" and info.name.startswith("CUDA: ") and info.autocast_dtype is None
    assert not torch.backends.cudnn.allow_tf32  # float32 means float32, not cuDNN's TF32
    reduced = pick_device("auto", "bf16")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert reduced.autocast_dtype == expected and reduced.name.endswith(("(bf16)", "(fp16)"))


def _agreement(precision: str) -> dict:
    image, report = _demo_case()
    gpu = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cuda", precision=precision)
    cpu = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    agreement = agreement_with_cpu(gpu.explain(image, report), cpu.explain(image, report))
    print(precision, json.dumps(agreement))
    return agreement


def test_bundled_model_in_float32_on_cuda_gives_the_cpu_numbers():
    agreement = _agreement("float32")
    assert agreement["max_abs_probability_diff"] < 1e-3
    assert agreement["findings_rank_order_equal"]
    assert agreement["shared_region_cells"] == agreement["regions"]
    assert agreement["max_abs_word_attention_diff"] < 1e-3


def test_bundled_model_in_bf16_on_cuda_stays_close_to_float32():
    # bf16 keeps ~3 significant digits and the logit scale magnifies them: on an H200 the
    # probabilities moved by up to 0.12 (BENCHMARKS.md). This bounds the damage, not the noise.
    agreement = _agreement("bf16")
    assert agreement["max_abs_probability_diff"] < 0.2
    assert agreement["shared_region_cells"] >= agreement["regions"] - 4
    assert agreement["max_abs_word_attention_diff"] < 0.05


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
