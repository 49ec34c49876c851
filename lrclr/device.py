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


def pick_device(preference: str = "auto") -> DeviceInfo:
    """``preference`` is ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``."""
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
        # bf16 keeps float32's range, so no loss scaling is needed; older GPUs fall back to fp16.
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return DeviceInfo(device, f"CUDA: {torch.cuda.get_device_name(index)}", dtype)
    if device.type == "mps":
        return DeviceInfo(device, "Apple MPS", torch.float16)
    return DeviceInfo(device, f"CPU ({torch.get_num_threads()} threads)", None)


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
