"""A GPU out-of-memory error moves the model to the CPU with a notice instead of failing the request.

No GPU is needed: the model is told it sits on the "meta" device (any non-CPU device takes the same
path), and the first call into a tower raises ``torch.OutOfMemoryError`` as a full GPU would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrclr.model.config import tiny_config
from lrclr.model.device import DeviceInfo, move_to
from lrclr.model.lrclr_model import LRCLRModel

REPORT = "Small left pleural effusion."


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LRCLRModel(tiny_config()).eval()


def _image() -> np.ndarray:
    return np.random.default_rng(0).random((80, 64)).astype(np.float32)


def _pretend_gpu_then_fail_once(model: LRCLRModel, monkeypatch, method: str) -> list[int]:
    model.device_info = DeviceInfo(torch.device("meta"), "CUDA: simulated GPU", None)
    real, calls = getattr(model, method), []

    def out_of_memory_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(model, method, out_of_memory_once)
    return calls


def test_encoding_falls_back_to_the_cpu_and_says_so(model, monkeypatch):
    expected = model.encode_case(_image()).features.global_embedding
    calls = _pretend_gpu_then_fail_once(model, monkeypatch, "encode_image")
    case = model.encode_case(_image())
    assert len(calls) == 2  # failed once, then succeeded on the CPU
    assert model.device_info.device.type == "cpu"
    assert "simulated GPU ran out of memory" in model.fallback_notice
    torch.testing.assert_close(case.features.global_embedding, expected)


def test_explaining_an_already_encoded_case_moves_it_along(model, monkeypatch):
    case = model.encode_case(_image())
    expected = model.explain(case, REPORT)
    calls = _pretend_gpu_then_fail_once(model, monkeypatch, "encode_text")
    explanation = model.explain(case, REPORT)
    # Failed once; then, on the CPU, the finding prompts (their cache is cleared on a move) and the report.
    assert len(calls) == 3 and model.device_info.device.type == "cpu" and model.fallback_notice
    assert [w.text for w in explanation.words] == [w.text for w in expected.words]
    assert [f.probability for f in explanation.findings] == pytest.approx([f.probability for f in expected.findings])


def test_out_of_memory_on_the_cpu_is_not_hidden(model, monkeypatch):
    monkeypatch.setattr(model, "encode_image", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("cpu")))
    with pytest.raises(torch.OutOfMemoryError):
        model.encode_case(_image())
    assert model.fallback_notice == ""


def test_move_to_reaches_tensors_inside_nested_results(model):
    case = model.encode_case(_image())
    moved = move_to(case, torch.device("meta"))
    assert moved.features.patches.device.type == "meta"
    assert moved.features.regions.indices.device.type == "meta"
    assert moved.letterbox == case.letterbox and moved.features.grid == case.features.grid
