"""``python -m train finetune``: LRCLR on top of a baseline (or any compatible) model folder.

The towers and projections come from ``init_from``; the region selector and the interaction layer
start fresh and learn from the local loss, as in the paper's fine-tuning framework.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from train.fit import add_arguments as add_fit_arguments
from train.fit import run_training
from train.run_config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fit_arguments(parser)
    parser.add_argument("--init-from", type=Path, default=None,
                        help="model folder to start from, e.g. an exported baseline (or set init_from in the config)")


def run(args: argparse.Namespace) -> int:
    config = TrainConfig.load(args.config, args.set)
    if args.init_from is not None:
        config.init_from = str(args.init_from)
    config.model["use_regions"] = True
    run_dir = run_training(config, args.command_line, resume=not args.no_resume, device=args.device)
    if os.environ.get("RANK", "0") == "0":  # one line, not one per torchrun process
        print(f"LRCLR run in {run_dir}; export with: python -m train export {run_dir} --out DIR")
    return 0
