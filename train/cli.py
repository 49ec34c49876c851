"""Command dispatch for ``python -m train``.

Each command lives in its own module and exposes ``add_arguments(parser)`` and ``run(args) -> int``;
registering one is a line in ``COMMANDS``. Modules are imported lazily so that ``--help`` and light
commands do not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "label-reports": ("train.commands.label_reports", "label findings in OpenI XML or plain-text reports to CSV"),
    "labeler-check": ("train.commands.labeler_check", "score the report labeler against OpenI MeSH indexing"),
    "make-phantoms": ("train.commands.make_phantoms", "synthetic chest radiographs with masks and reports"),
    "compose-reports": ("train.commands.compose_reports", "reports for NIH images from real OpenI sentences"),
    "make-shards": ("train.commands.make_shards", "write any dataset spec as WebDataset tar shards for cluster training"),
    "pretrain": ("train.commands.pretrain", "train the global-only CLIP baseline"),
    "finetune": ("train.commands.finetune", "fine-tune LRCLR (regions + interaction) from a baseline model folder"),
    "export": ("train.commands.export", "turn a training run into a model folder the app loads"),
    "cross-validate": ("train.commands.cross_validate", "patient-grouped K-fold cross-validation: out-of-fold scores, AUC CIs, paired differences"),
    "calibrate": ("train.commands.calibrate", "per-finding calibration and operating points from cross-validation, into a model card"),
    "input-reference": ("train.commands.input_reference", "fit the input gate's reference into a model card; its pass and catch rates"),
    "evaluate": ("train.commands.evaluate", "zero-shot AUC with CIs, retrieval and localization for one or more models"),
    "make-demo": ("train.commands.make_demo", "build the bundled demo gallery in assets/demo from the shared data"),
    "simulate-flags": ("train.commands.simulate_flags", "rule-based simulated annotator's flags, written to a new store"),
    "flag-effect": ("train.commands.flag_effect", "flagged pairs' attention and held-out AUC before vs after learning from flags"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command is listed; only the one being run is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m train", description="LRCLR training, evaluation, export and data preparation."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "train", *argv])  # recorded in run folders and model cards
    return int(args._module.run(args) or 0)
