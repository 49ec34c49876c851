"""``python -m train finetune``: LRCLR on top of a baseline (or any compatible) model folder.

The towers and projections come from ``init_from``; the region selector and the interaction layer
start fresh and learn from the local loss, as in the paper's fine-tuning framework.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from train.training.fit import add_arguments as add_fit_arguments
from train.training.fit import run_training
from train.training.run_config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fit_arguments(parser)
    parser.add_argument("--init-from", type=Path, default=None,
                        help="model folder to start from, e.g. an exported baseline (or set init_from in the config)")
    flags = parser.add_argument_group("learning from annotators' flags (see train/training/flag_loss.py)")
    flags.add_argument("--flags", type=Path, default=None, metavar="DB",
                       help="flag store (SQLite) whose bad/good matches add a feedback term to each step")
    flags.add_argument("--flag-weight", type=float, default=None, metavar="W", help="weight of the term (default 1)")
    flags.add_argument("--flag-good-weight", type=float, default=None, metavar="W",
                       help="pull of good matches relative to bad ones (default 0.5; 0: bad matches only)")
    flags.add_argument("--flag-batch-size", type=int, default=None, metavar="N",
                       help="flagged pairs per step (default 16)")
    flags.add_argument("--flag-images", type=Path, action="append", default=None, metavar="DIR",
                       help="folder to find flagged images (by SHA-256) and .txt reports in; repeatable "
                            "(default: assets/demo and the training dataset's images)")
    flags.add_argument("--flags-any-model", action="store_true",
                       help="also learn from flags made on other models than the one fine-tuned from")
    flags.add_argument("--flag-all-layers", action="store_true",
                       help="let the term train the towers and projections too (default: only the region "
                            "selector and the interaction layer, so the global embedding is left alone)")
    flags.add_argument("--flag-fixed-selector", action="store_true",
                       help="stop the term's gradient into the selection scores: only how words attend may "
                            "change, no cell is pushed out of the selection (needs a high lr)")


def run(args: argparse.Namespace) -> int:
    config = TrainConfig.load(args.config, args.set)
    if args.init_from is not None:
        config.init_from = str(args.init_from)
    config.model["use_regions"] = True
    _apply_flag_options(config, args)
    run_dir = run_training(config, args.command_line, resume=not args.no_resume, device=args.device)
    if os.environ.get("RANK", "0") == "0":  # one line, not one per torchrun process
        print(f"LRCLR run in {run_dir}; export with: python -m train export {run_dir} --out DIR")
    return 0


def _apply_flag_options(config: TrainConfig, args: argparse.Namespace) -> None:
    """Command-line flag options override the config (which --set can also change)."""
    for key in ("flags", "flag_weight", "flag_good_weight", "flag_batch_size"):
        value = getattr(args, key)
        if value is not None:
            setattr(config, key, str(value) if isinstance(value, Path) else value)
    if args.flag_images is not None:
        config.flag_images = [str(folder) for folder in args.flag_images]
    if args.flags_any_model:
        config.flags_any_model = True
    if args.flag_all_layers:
        config.flag_local_only = False
    if args.flag_fixed_selector:
        config.flag_moves_selector = False
