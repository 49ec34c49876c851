"""OpenI (Indiana University) reports paired with their images, for users who have the PNGs.

Each XML names the images it describes (``parentImage id="CXR12_IM-0018-1001"``); OpenI distributes
them as ``<id>.png`` (NLMCXR_png.tgz), so one sample per image file found. Reports whose images are
absent are skipped and counted in ``missing_images``. A report usually has a frontal and a lateral
image; OpenI's XML does not say which is which, so both are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lrclr.reports.labeler import label_report
from lrclr.reports.text import OpenIReport, ReportReadError, load_openi_reports
from train.datasets.base import DatasetError, ImageReportDataset, read_pixels
from train.datasets.sample import Sample

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


@dataclass(frozen=True)
class OpenIRecord:
    image_id: str
    path: Path
    report: OpenIReport


class OpenIDataset(ImageReportDataset):
    """Labels come from the project's labeler run on the report text (computed on first use)."""

    name = "openi"

    def __init__(self, reports_path: str | Path, images_dir: str | Path, **options) -> None:
        super().__init__(**options)
        images_dir = Path(images_dir)
        if not images_dir.is_dir():
            raise DatasetError(f"OpenI images folder not found: {images_dir}")
        try:
            reports = load_openi_reports(reports_path)
        except ReportReadError as error:
            raise DatasetError(str(error)) from error
        available = {p.name.lower(): p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        self.records: list[OpenIRecord] = []
        self.missing_images: list[str] = []
        for report in reports:
            for image_id in report.image_ids:
                path = next((available[key] for suffix in IMAGE_SUFFIXES
                             if (key := f"{image_id}{suffix}".lower()) in available), None)
                if path is None:
                    self.missing_images.append(image_id)
                else:
                    self.records.append(OpenIRecord(image_id, path, report))
        if self.missing_images:
            log.info("openi: %d image(s) named in reports are not in %s (skipped)",
                     len(self.missing_images), images_dir)
        self._labels: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def patient_ids(self) -> list[str]:
        # OpenI has one report per patient visit and no patient id; the report is the safest unit.
        return [r.report.report_id for r in self.records]

    def labels_of(self, index: int) -> dict[str, int]:
        report = self.records[index].report
        if report.report_id not in self._labels:
            self._labels[report.report_id] = dict(label_report(report.text()).labels)
        return dict(self._labels[report.report_id])

    def _load(self, index: int) -> Sample:
        record = self.records[index]
        return Sample(record.image_id, record.report.report_id, read_pixels(record.path),
                      record.report.text(), self.labels_of(index), source=f"openi:{record.report.report_id}")
