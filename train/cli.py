"""Command dispatch for ``python -m train``.

Each command lives in its own module and exposes ``add_arguments(parser)`` and ``run(args) -> int``;
registering one is a line in ``COMMANDS``. Modules are imported lazily so that ``--help`` and light
commands do not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "label-reports": ("train.label_reports", "label findings in OpenI XML or plain-text reports to CSV"),
    "labeler-check": ("train.labeler_check", "score the report labeler against OpenI MeSH indexing"),
    "make-phantoms": ("train.make_phantoms", "synthetic chest radiographs with masks and reports"),
    "compose-reports": ("train.compose_reports", "reports for NIH images from real OpenI sentences"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)
