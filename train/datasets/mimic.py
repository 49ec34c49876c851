"""MIMIC-CXR-JPG images with MIMIC-CXR reports, the official split and (optionally) CheXpert labels.

Layout (as PhysioNet distributes it; ``reports_root`` defaults to ``root``)::

    root/mimic-cxr-2.0.0-split.csv[.gz]       dicom_id, study_id, subject_id, split
    root/mimic-cxr-2.0.0-chexpert.csv[.gz]    subject_id, study_id, 14 observations (optional)
    root/mimic-cxr-2.0.0-metadata.csv[.gz]    dicom_id, ViewPosition, ... (optional: view filter)
    root/files/p10/p10000032/s50414267/<dicom_id>.jpg
    reports_root/files/p10/p10000032/s50414267.txt

The report text is FINDINGS then IMPRESSION (``lrclr.reports.text.split_sections``); a report with
neither (some MIMIC reports are a bare paragraph) is used whole rather than dropped. Reports are
read in ``__getitem__`` like the images, so building the dataset touches only the CSVs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lrclr.reports.text import read_report_file, split_sections
from train.datasets.base import (
    DatasetError, ImageReportDataset, SampleReadError, find_file, read_pixels, read_table,
)
from train.datasets.label_columns import check_uncertain_policy, finding_columns, row_labels
from train.datasets.sample import Sample

SPLITS = ("train", "validate", "test")
FRONTAL_VIEWS = ("PA", "AP")
_FINAL_REPORT = re.compile(r"^FINAL REPORT\s*")  # the title line every MIMIC report starts with


@dataclass(frozen=True)
class MIMICRecord:
    dicom_id: str
    study_id: str
    subject_id: str


def _csv_names(stem: str) -> tuple[str, str]:
    return f"{stem}.csv", f"{stem}.csv.gz"


def report_text(raw: str) -> str:
    sections = split_sections(raw)
    parts = [sections[key] for key in ("findings", "impression") if sections.get(key)]
    if parts:
        return " ".join(" ".join(parts).split())
    whole = " ".join(" ".join(sections.values()).split())
    return _FINAL_REPORT.sub("", whole)


class MIMICCXRDataset(ImageReportDataset):
    """``split``: "train", "validate", "test" or None (all). ``views``: kept ViewPositions when a
    metadata CSV is present (None keeps all). ``uncertain``: see ``label_columns.row_labels``."""

    name = "mimic-cxr"

    def __init__(self, root: str | Path, split: str | None = "train", reports_root: str | Path | None = None,
                 views: Sequence[str] | None = FRONTAL_VIEWS, uncertain: str = "keep",
                 image_suffix: str = ".jpg", **options) -> None:
        super().__init__(**options)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"MIMIC-CXR folder not found: {self.root}")
        if split is not None and split not in SPLITS:
            raise DatasetError(f"MIMIC-CXR split must be one of {SPLITS} or None, not {split!r}")
        self.reports_root = Path(reports_root) if reports_root else self.root
        self.uncertain = check_uncertain_policy(uncertain)
        self.image_suffix = image_suffix
        table = read_table(find_file(self.root, _csv_names("mimic-cxr-2.0.0-split"), "MIMIC-CXR split CSV"),
                           ("dicom_id", "study_id", "subject_id", "split"), "MIMIC-CXR split CSV")
        if split is not None:
            table = table[table["split"] == split]
        keep = self._view_filter(views)
        self.records = [MIMICRecord(r["dicom_id"], r["study_id"], r["subject_id"])
                        for r in table.to_dict("records") if keep is None or r["dicom_id"] in keep]
        self._labels = self._read_labels()

    def _view_filter(self, views: Sequence[str] | None) -> set[str] | None:
        names = _csv_names("mimic-cxr-2.0.0-metadata")
        if views is None or not any((self.root / n).is_file() for n in names):
            return None
        meta = read_table(find_file(self.root, names, "MIMIC-CXR metadata CSV"), ("dicom_id", "ViewPosition"),
                          "MIMIC-CXR metadata CSV")
        return set(meta.loc[meta["ViewPosition"].isin(list(views)), "dicom_id"])

    def _read_labels(self) -> dict[str, dict[str, int]]:
        names = _csv_names("mimic-cxr-2.0.0-chexpert")
        if not any((self.root / n).is_file() for n in names):
            return {}
        path = find_file(self.root, names, "MIMIC-CXR CheXpert labels CSV")
        table = read_table(path, ("subject_id", "study_id"), "MIMIC-CXR CheXpert labels CSV")
        try:
            columns = finding_columns(table.columns)
            return {row["study_id"]: row_labels(row, columns, self.uncertain) for row in table.to_dict("records")}
        except ValueError as error:
            raise DatasetError(f"{path}: {error}") from error

    def __len__(self) -> int:
        return len(self.records)

    def patient_ids(self) -> list[str]:
        return [r.subject_id for r in self.records]

    def labels_of(self, index: int) -> dict[str, int]:
        return dict(self._labels.get(self.records[index].study_id, {}))

    def study_folder(self, record: MIMICRecord, base: Path) -> Path:
        subject = f"p{record.subject_id}"
        return base / "files" / subject[:3] / subject / f"s{record.study_id}"

    def _load(self, index: int) -> Sample:
        record = self.records[index]
        image = self.study_folder(record, self.root) / f"{record.dicom_id}{self.image_suffix}"
        pixels = read_pixels(image)
        report_path = self.study_folder(record, self.reports_root).with_suffix(".txt")
        try:
            raw = read_report_file(report_path)
        except OSError as error:
            raise SampleReadError(f"MIMIC-CXR report not readable: {report_path} ({error.strerror})") from error
        return Sample(record.dicom_id, record.subject_id, pixels, report_text(raw), self.labels_of(index),
                      source=f"mimic-cxr:s{record.study_id}")
