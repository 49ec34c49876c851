"""A user's own image-report pairs listed in a CSV.

Columns: ``image`` (a path relative to the CSV's folder, or absolute), and either ``report`` (the
text) or ``report_path`` (a text file, relative like ``image``); optional ``patient_id`` (else each
image is its own patient, which makes splits image-level) and label columns named as findings
("Effusion", "Pleural Effusion", ... with 1 / 0 / -1 / blank).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lrclr.reports.text import read_report_file
from train.datasets.base import DatasetError, ImageReportDataset, SampleReadError, read_pixels, read_table
from train.datasets.label_columns import check_uncertain_policy, finding_columns, row_labels
from train.datasets.sample import Sample


@dataclass(frozen=True)
class CSVRecord:
    image: str
    patient_id: str
    labels: dict[str, int]
    report: str | None  # the text, or None when it is read from report_path
    report_path: str | None


class CSVDataset(ImageReportDataset):
    name = "csv"

    def __init__(self, csv_path: str | Path, image_column: str = "image", report_column: str = "report",
                 report_path_column: str = "report_path", patient_column: str = "patient_id",
                 uncertain: str = "keep", **options) -> None:
        super().__init__(**options)
        self.csv_path = Path(csv_path)
        self.base = self.csv_path.parent
        table = read_table(self.csv_path, (image_column,), "image-report CSV")
        has_text, has_path = report_column in table.columns, report_path_column in table.columns
        if not (has_text or has_path):
            raise DatasetError(f"{self.csv_path} needs a {report_column!r} or {report_path_column!r} column; "
                               f"it has {list(table.columns)}")
        check_uncertain_policy(uncertain)
        try:
            columns = finding_columns(table.columns)
        except ValueError as error:
            raise DatasetError(f"{self.csv_path}: {error}") from error
        has_patient = patient_column in table.columns
        self.records = []
        for number, row in enumerate(table.to_dict("records"), 2):
            image = row[image_column].strip()
            if not image:
                raise DatasetError(f"{self.csv_path} line {number}: empty {image_column!r}")
            try:
                labels = row_labels(row, columns, uncertain)
            except ValueError as error:
                raise DatasetError(f"{self.csv_path} line {number}: {error}") from error
            text = row[report_column] if has_text else None
            path = row[report_path_column].strip() if has_path and not (text and text.strip()) else None
            patient = row[patient_column].strip() if has_patient else ""
            self.records.append(CSVRecord(image, patient or image, labels, text, path or None))

    def __len__(self) -> int:
        return len(self.records)

    def patient_ids(self) -> list[str]:
        return [r.patient_id for r in self.records]

    def labels_of(self, index: int) -> dict[str, int]:
        return dict(self.records[index].labels)

    def _load(self, index: int) -> Sample:
        record = self.records[index]
        pixels = read_pixels(self.base / record.image)
        report = record.report or ""
        if record.report_path:
            path = self.base / record.report_path
            try:
                report = read_report_file(path)
            except OSError as error:
                raise SampleReadError(f"report not readable: {path} ({error})") from error
        return Sample(record.image, record.patient_id, pixels, report.strip(), dict(record.labels),
                      source=f"csv:{self.csv_path.name}")
