"""CheXpert (Stanford): a CSV of image paths with 14 observations labelled 1 / 0 / -1 / blank.

``Path`` values look like ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``,
relative to the folder that holds ``CheXpert-v1.0-small``; paths are also accepted relative to the
CSV's own folder, so either root works. CheXpert has no reports: ``report_column`` names CSV
column(s) holding text (CheXpert Plus: "section_findings", "section_impression"), else "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from train.datasets.base import DatasetError, ImageReportDataset, SampleReadError, read_pixels, read_table
from train.datasets.label_columns import check_uncertain_policy, finding_columns, row_labels
from train.datasets.sample import Sample

_PATIENT = re.compile(r"(patient\d+)")


@dataclass(frozen=True)
class CheXpertRecord:
    path: str  # as written in the CSV
    patient_id: str
    labels: dict[str, int]
    report: str


def patient_of(path: str) -> str:
    match = _PATIENT.search(path)
    return match.group(1) if match else path


class CheXpertDataset(ImageReportDataset):
    name = "chexpert"

    def __init__(self, csv_path: str | Path, root: str | Path | None = None, frontal_only: bool = True,
                 uncertain: str = "keep", report_column: str | Sequence[str] | None = None, **options) -> None:
        super().__init__(**options)
        csv_path = Path(csv_path)
        self.root = Path(root) if root else csv_path.parent
        report_columns = [report_column] if isinstance(report_column, str) else list(report_column or [])
        required = ["Path"] + (["Frontal/Lateral"] if frontal_only else []) + report_columns
        table = read_table(csv_path, required, "CheXpert CSV")
        if frontal_only:
            table = table[table["Frontal/Lateral"].str.strip().str.lower() == "frontal"]
        check_uncertain_policy(uncertain)
        try:
            columns = finding_columns(table.columns)
            self.records = [
                CheXpertRecord(row["Path"], patient_of(row["Path"]), row_labels(row, columns, uncertain),
                               " ".join(" ".join(row[c] for c in report_columns if row[c].strip()).split()))
                for row in table.to_dict("records")
            ]
        except ValueError as error:
            raise DatasetError(f"{csv_path}: {error}") from error

    def __len__(self) -> int:
        return len(self.records)

    def patient_ids(self) -> list[str]:
        return [r.patient_id for r in self.records]

    def labels_of(self, index: int) -> dict[str, int]:
        return dict(self.records[index].labels)

    def image_path(self, relative: str) -> Path:
        parts = PurePosixPath(relative.replace("\\", "/")).parts
        for candidate in (self.root.joinpath(*parts), self.root.joinpath(*parts[1:])):
            if candidate.is_file():
                return candidate
        raise SampleReadError(f"CheXpert image {relative} not found under {self.root}")

    def _load(self, index: int) -> Sample:
        record = self.records[index]
        pixels = read_pixels(self.image_path(record.path))
        return Sample(record.path, record.patient_id, pixels, record.report, dict(record.labels),
                      source="chexpert")
