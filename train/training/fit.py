"""Shared by ``pretrain`` and ``finetune``: build the data, train, and record how the run was made."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from pathlib import Path

import torch

from lrclr.model.weights import code_version
from lrclr.ranks import Ranks
from train.training.distributed import setup_distributed, teardown_distributed
from train.training.run_config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="training config JSON (see train/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set max_steps=100 --set model.num_regions=8")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the output folder has checkpoints")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_description(device: torch.device, context: Ranks) -> str:
    if device.type == "cuda":
        what = f"{context.world_size} x {torch.cuda.get_device_name(device)}"
    else:
        what = f"CPU {cpu_name()}, {torch.get_num_threads()} threads x {context.world_size} process(es)"
    return f"{what}; torch {torch.__version__}"


def _wants_cuda(preference: str) -> bool:
    return preference == "cuda" or (preference == "auto" and torch.cuda.is_available())


def _device(preference: str, context: Ranks) -> torch.device:
    return torch.device("cuda", context.local_rank) if _wants_cuda(preference) else torch.device("cpu")


def run_training(config: TrainConfig, command: str, resume: bool = True, device: str = "auto") -> Path:
    from train.datasets import build_dataset
    from train.datasets.mixed import with_extra_training_data
    from train.datasets.splits import split_dataset
    from train.training.trainer import Trainer

    context = setup_distributed(use_cuda=_wants_cuda(device))
    try:
        dataset = build_dataset(config.dataset)
        splits = split_dataset(dataset, config.split_fractions, config.split_seed)
        train_set = with_extra_training_data(splits["train"], config.extra_train)
        torch_device = _device(device, context)
        feedback = None
        if config.flags:
            from train.training.flag_loss import FlagFeedback

            feedback = FlagFeedback(config, dataset, context.is_main)
        trainer = Trainer(config, train_set, splits["val"], context, torch_device, resume=resume,
                          feedback=feedback)
        if context.is_main:
            _write_run_info(config, command, splits, train_set, torch_device, context)
        trainer.fit()
    finally:
        teardown_distributed()
    return Path(config.output_dir)


def _write_run_info(config: TrainConfig, command: str, splits, train_set, device: torch.device,
                    context: Ranks) -> None:
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "command": command,
        "training_data": {"spec": config.dataset, "split_sizes": {k: len(v) for k, v in splits.items()},
                          "split_fractions": list(config.split_fractions), "split_seed": config.split_seed},
        "extra_training_data": ({"specs": config.extra_train, "sizes": train_set.sizes()}
                                if config.extra_train else None),
        "hardware": hardware_description(device, context),
        "code_version": code_version(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
