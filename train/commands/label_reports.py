"""Label the findings of many reports into one CSV.

    python -m train label-reports PATH --out labels.csv

PATH is the OpenI ``.tgz``, a folder of OpenI XML files, or a folder of ``.txt`` reports (MIMIC-style
section headers understood). Columns: ``report_id``, then one per finding in ``ALL_FINDINGS``
order with 1 (positive), 0 (negated), -1 (uncertain) or empty (not mentioned). OpenI reports are
labeled on FINDINGS + IMPRESSION (what the model sees); a .txt report is labeled whole, its id is
the file name without extension.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from lrclr.errors import LRCLRError
from lrclr.reports.labeler import ALL_FINDINGS, label_report
from lrclr.reports.text import ReportReadError, load_openi_reports, read_report_file


def read_reports(path: Path) -> list[tuple[str, str]]:
    """(report_id, text) pairs from an OpenI archive, an XML folder or a .txt folder."""
    if path.is_dir():
        texts = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if texts and not any(path.rglob("*.xml")):
            return [(p.stem, read_report_file(p)) for p in texts]
    if not path.exists():
        raise ReportReadError(f"no reports at {path}")
    return [(r.report_id, r.text()) for r in load_openi_reports(path)]


def write_labels(reports: list[tuple[str, str]], out) -> int:
    writer = csv.writer(out)
    writer.writerow(["report_id", *ALL_FINDINGS])
    for report_id, text in reports:
        row = label_report(text).row()
        writer.writerow([report_id, *("" if row[name] is None else row[name] for name in ALL_FINDINGS)])
    return len(reports)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="OpenI .tgz, a folder of OpenI XML, or a folder of .txt reports")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write ('-' for standard output)")


def run(args: argparse.Namespace) -> int:
    try:
        reports = read_reports(args.path)
    except LRCLRError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if str(args.out) == "-":
        count = write_labels(reports, sys.stdout)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            count = write_labels(reports, handle)
        print(f"labeled {count} reports -> {args.out}")
    return 0
