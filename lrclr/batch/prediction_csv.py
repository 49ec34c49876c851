"""Batch zero-shot prediction as a CSV: the format of ``python -m lrclr predict`` and of the app's
Batch page download (one writer, so the two produce the same bytes for the same files).

The scoring itself streams in :mod:`lrclr.batch.scoring`: rows come out one chunk at a time, so memory does
not grow with the number of files, and a file that cannot be read becomes a row with its reason in
``error`` instead of stopping the run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

from lrclr.batch.scoring import BatchRun, PredictionRow
from lrclr.batch.sources import FolderSource
from lrclr.escaping import csv_text_cell


def predict_rows(model, files: Sequence[Path], findings: Sequence[str], reports_dir: Path | None = None,
                 batch_size: int | None = None) -> Iterator[PredictionRow]:
    """One row per file, in the order given: ``python -m lrclr predict`` as a library call."""
    run = BatchRun(model, FolderSource(list(files), reports_dir), findings, batch_size)
    for chunk in run:
        yield from (result.row for result in chunk)


def csv_header(findings: Sequence[str], with_reports: bool) -> list[str]:
    report_columns = [*(f"report: {f}" for f in findings), "report not read because"] if with_reports else []
    return ["image", *findings, *report_columns, "not a chest film because", "error"]


def csv_fields(row: PredictionRow, findings: Sequence[str], with_reports: bool) -> list[str]:
    probabilities = [f"{row.probabilities[f]:.6f}" if row.probabilities else "" for f in findings]
    labels = [*(str(row.report_labels.get(f, "")) for f in findings), csv_text_cell(row.report_note)] if with_reports else []
    # File names are user text, and an error or note repeats the file name.
    return [csv_text_cell(row.image), *probabilities, *labels, csv_text_cell(row.input_check), csv_text_cell(row.error)]


def write_csv(rows: Iterable[PredictionRow], out: TextIO, findings: Sequence[str], with_reports: bool = False):
    """Write rows as they come; returns (rows scored, rows failed)."""
    writer = csv.writer(out)
    writer.writerow(csv_header(findings, with_reports))
    scored = failed = 0
    for row in rows:
        writer.writerow(csv_fields(row, findings, with_reports))
        scored, failed = (scored, failed + 1) if row.error else (scored + 1, failed)
    return scored, failed
