"""``python -m train compose-reports``: reports for NIH images assembled from real OpenI sentences."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nih", help="NIH sample folder with labels.csv")


def run(args: argparse.Namespace) -> int:
    print("compose-reports: not implemented yet")
    return 1
