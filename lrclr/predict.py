"""Batch zero-shot prediction over files and folders: the engine behind ``python -m lrclr predict``.

Rows stream out one batch at a time, so memory does not grow with the number of files, and a file
that cannot be read becomes a row with its reason in ``error`` instead of stopping the run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

from lrclr.errors import ImageReadError
from lrclr.imaging import load_image
from lrclr.reports import read_report_file

# Extensions taken from folders. DICOM files often have none, so extension-less files are tried too;
# anything else in a folder (reports, notes, CSVs) is not an image and is left alone.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ""}
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class PredictionRow:
    image: str  # the file name
    probabilities: dict[str, float] = field(default_factory=dict)  # empty when the file failed
    report_labels: dict[str, int] = field(default_factory=dict)  # labeler status per finding, if a report was found
    error: str = ""


def collect_image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files given directly are always tried; folders contribute their image-like files, sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        else:
            files.append(path)
    return files


def _report_labels(image_path: Path, reports_dir: Path | None, findings: Sequence[str]) -> dict[str, int]:
    if reports_dir is None:
        return {}
    report_path = reports_dir / f"{image_path.stem}.txt"
    if not report_path.is_file():
        return {}
    from lrclr.labeler import label_report

    labels = label_report(read_report_file(report_path)).labels
    return {f: labels[f] for f in findings if f in labels}


def predict_rows(
    model,
    files: Iterable[Path],
    findings: Sequence[str],
    reports_dir: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[PredictionRow]:
    """One row per file, in the order given; images are scored ``batch_size`` at a time."""
    pending: list[tuple[Path, object | None, str]] = []  # (path, decoded image, error)
    for path in files:
        try:
            pending.append((path, load_image(path, name=path.name), ""))
        except ImageReadError as error:
            pending.append((path, None, str(error)))
        except OSError as error:  # unreadable path: permissions, vanished file
            pending.append((path, None, f"{path.name}: cannot read the file ({error.strerror or error})"))
        if len(pending) == batch_size:
            yield from _score(model, pending, findings, reports_dir)
            pending = []
    if pending:
        yield from _score(model, pending, findings, reports_dir)


def _score(model, pending, findings, reports_dir) -> Iterator[PredictionRow]:
    images = [image for _, image, _ in pending if image is not None]
    scores = iter(model.zero_shot(images, findings).probabilities if images else [])
    for path, image, error in pending:
        if image is None:
            yield PredictionRow(path.name, error=error)
        else:
            probabilities = dict(zip(findings, map(float, next(scores))))
            yield PredictionRow(path.name, probabilities, _report_labels(path, reports_dir, findings))


def csv_header(findings: Sequence[str], with_reports: bool) -> list[str]:
    report_columns = [f"report: {f}" for f in findings] if with_reports else []
    return ["image", *findings, *report_columns, "error"]


def write_csv(rows: Iterable[PredictionRow], out: TextIO, findings: Sequence[str], with_reports: bool = False):
    """Write rows as they come; returns (rows scored, rows failed)."""
    writer = csv.writer(out)
    writer.writerow(csv_header(findings, with_reports))
    scored = failed = 0
    for row in rows:
        probabilities = [f"{row.probabilities[f]:.6f}" if row.probabilities else "" for f in findings]
        labels = [str(row.report_labels.get(f, "")) for f in findings] if with_reports else []
        writer.writerow([row.image, *probabilities, *labels, row.error])
        scored, failed = (scored, failed + 1) if row.error else (scored + 1, failed)
    return scored, failed
