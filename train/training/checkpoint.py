"""Training checkpoints: everything needed to resume a run exactly, written atomically.

Each checkpoint is its own folder, ``checkpoint-<step>``, written under a temporary name and renamed
into place, so a crash mid-write never leaves a partial checkpoint that looks complete;
``latest.json`` (also replaced atomically) names the newest one. Model weights are safetensors; the
optimizer and scheduler state are plain tensors and numbers, read back with
``torch.load(weights_only=True)``, which refuses anything that would need unpickling code.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lrclr.model.config import LRCLRConfig

LATEST = "latest.json"
KEEP_LAST = 2


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed: the data position
    best_val_loss: float | None = None
    evaluations_without_improvement: int = 0
    elapsed_seconds: float = 0.0


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: TrainerState) -> Path:
    final = run_dir / f"checkpoint-{state.step:06d}"
    temporary = run_dir / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(temporary / "model.safetensors"))
    model.config.save(temporary)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        temporary / "trainer_state.pt",
    )
    (temporary / "trainer_state.json").write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)  # re-saving the same step after a resume
    os.replace(temporary, final)
    _write_latest(run_dir, final.name)
    _prune(run_dir, keep=final.name)
    return final


def _write_latest(run_dir: Path, name: str) -> None:
    temporary = run_dir / f".{LATEST}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps({"checkpoint": name}) + "\n", encoding="utf-8")
    os.replace(temporary, run_dir / LATEST)


def _prune(run_dir: Path, keep: str) -> None:
    checkpoints = sorted(p for p in run_dir.glob("checkpoint-*") if p.is_dir())
    for old in checkpoints[:-KEEP_LAST]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / LATEST
    if not pointer.is_file():
        return None
    folder = run_dir / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    return folder if folder.is_dir() else None


@dataclass
class LoadedCheckpoint:
    config: LRCLRConfig
    weights: dict[str, torch.Tensor]
    trainer: dict[str, Any]  # optimizer, scheduler, RNG states
    state: TrainerState


def load_checkpoint(folder: Path) -> LoadedCheckpoint:
    return LoadedCheckpoint(
        config=LRCLRConfig.load(folder),
        weights=load_file(str(folder / "model.safetensors")),
        trainer=torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True),
        state=TrainerState(**json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))),
    )
