"""``python -m train pretrain``: the global-only CLIP baseline (``use_regions=False``).

The same model class and loop as ``finetune``; only the region and interaction layers are absent, so
baseline and LRCLR are compared like for like.
"""

from __future__ import annotations

import argparse
import os

from train.training.fit import add_arguments, run_training
from train.training.run_config import TrainConfig

__all__ = ["add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    config = TrainConfig.load(args.config, args.set)
    config.model["use_regions"] = False
    run_dir = run_training(config, args.command_line, resume=not args.no_resume, device=args.device)
    if os.environ.get("RANK", "0") == "0":  # one line, not one per torchrun process
        print(f"baseline run in {run_dir}; export with: python -m train export {run_dir} --out DIR")
    return 0
