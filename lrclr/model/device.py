"""Where the model runs: CUDA when present, else Apple MPS, else CPU, and at which precision."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    name: str  # what the app shows, e.g. "CUDA: NVIDIA H100 80GB HBM3" or "CPU (2 threads)"
    autocast_dtype: torch.dtype | None  # None: run in float32


PRECISIONS = ("float32", "bf16")


def pick_device(preference: str = "auto", precision: str = "float32") -> DeviceInfo:
    """``preference`` is ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.

    ``precision`` is ``"float32"`` (the default: a GPU gives the CPU's numbers) or ``"bf16"``
    (autocast on GPUs, for throughput; fp16 where a GPU lacks bf16). On an H200, bf16 moved the
    bundled model's probabilities by up to 0.12 against float32 (BENCHMARKS.md), enough to change
    what a radiologist sees, so it is opt-in. The CPU always runs float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    preference = preference.lower()
    if preference == "auto":
        if torch.cuda.is_available():
            preference = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            preference = "mps"
        else:
            preference = "cpu"
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but no CUDA GPU is available")
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = f"CUDA: {torch.cuda.get_device_name(index)}"
        if precision == "float32":
            # cuDNN runs float32 convolutions in TF32 (10-bit mantissa) unless told not to; float32
            # here means the CPU's numbers. Process-wide: every float32 model in it means the same.
            torch.backends.cudnn.allow_tf32 = False
            return DeviceInfo(device, name, None)
        # bf16 keeps float32's range, so no loss scaling is needed; older GPUs fall back to fp16.
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return DeviceInfo(device, f"{name} ({'bf16' if dtype == torch.bfloat16 else 'fp16'})", dtype)
    if device.type == "mps":
        return DeviceInfo(device, "Apple MPS" + (" (fp16)" if precision != "float32" else ""),
                          None if precision == "float32" else torch.float16)
    threads = torch.get_num_threads()
    return DeviceInfo(device, f"CPU ({threads} thread{'' if threads == 1 else 's'})", None)


def autocast(info: DeviceInfo):
    """Mixed precision on GPUs; a no-op context on CPU, where float32 is both faster and exact."""
    if info.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=info.device.type, dtype=info.autocast_dtype)


def move_to(value, device: torch.device):
    """``value`` with every tensor inside it (dataclasses, tuples, lists, dicts) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: move_to(getattr(value, f.name), device)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(move_to(item, device) for item in value)
    if isinstance(value, dict):
        return {key: move_to(item, device) for key, item in value.items()}
    return value
