"""NIH ChestX-ray14: labels CSV + PNG images, optional BBox_List_2017 boxes, composed reports.

Two CSV layouts are read: the team's sample (``labels.csv``: image, findings, patient_id, ...) and
the official release (``Data_Entry_2017.csv``: "Image Index", "Finding Labels", "Patient ID", ...),
whose images lie in ``images/`` or in ``images_001/images/`` ... ``images_012/images/``.
NIH has no reports; ``reports="composed"`` gives each image one assembled from real OpenI sentences
that re-label to exactly its findings (see ``train.synthetic.composed_reports``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lrclr.reports.labeler import NIH_FINDINGS, NO_FINDING
from train.datasets.base import DatasetError, ImageReportDataset, SampleReadError, read_pixels, read_table
from train.datasets.composed import (
    CachedReport, composed_reports, default_cache_dir, default_openi_path, read_composed_jsonl,
)
from train.datasets.label_columns import finding_name
from train.datasets.sample import Sample

LABEL_CSV_NAMES = ("labels.csv", "Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
# (image, findings, patient) column names per layout.
LAYOUTS = (("image", "findings", "patient_id"), ("Image Index", "Finding Labels", "Patient ID"))
BBOX_REFERENCE_SIZE = 1024  # BBox_List_2017 coordinates are in the 1024x1024 release's pixels


@dataclass(frozen=True)
class NIHRecord:
    image: str
    patient_id: str
    findings: tuple[str, ...]  # NIH names; empty for "No Finding"


class NIHDataset(ImageReportDataset):
    """``reports``: "composed" (from ``openi``, default the shared archive), a compose-reports JSONL
    path, or None (empty reports). ``findings`` are the label keys (each 1 or 0)."""

    name = "nih"

    def __init__(self, root: str | Path, reports: str | Path | None = "composed", openi: str | Path | None = None,
                 seed: int = 0, bbox_csv: str | Path | None = None, findings: Sequence[str] = NIH_FINDINGS,
                 images_dir: str | Path | None = None, cache_dir: str | Path | None = "auto",
                 bbox_reference_size: int = BBOX_REFERENCE_SIZE, **options) -> None:
        super().__init__(seed=seed, **options)
        root = Path(root)
        labels_csv = root if root.is_file() else _labels_csv(root)
        self.root = labels_csv.parent
        self.findings = tuple(findings)
        self.records = _read_records(labels_csv)
        self.images_dir = Path(images_dir) if images_dir else self.root / "images"
        self._image_index: dict[str, Path] | None = None
        self.bbox_reference_size = bbox_reference_size
        self.boxes = read_bbox_csv(Path(bbox_csv)) if bbox_csv else {}
        self.reports, self.report_source = self._reports(reports, openi, cache_dir)

    def _reports(self, reports, openi, cache_dir) -> tuple[dict[str, CachedReport], str]:
        if reports is None:
            return {}, "nih"
        if reports != "composed":
            loaded = read_composed_jsonl(Path(reports))
            absent = [r.image for r in self.records if r.image not in loaded]
            if absent:
                raise DatasetError(f"{reports} has no report for {len(absent)} image(s), e.g. {absent[:3]}")
            return loaded, f"nih+reports:{Path(reports).name}"
        openi = Path(openi) if openi else default_openi_path()
        if openi is None:
            raise DatasetError("composed reports need the OpenI archive: pass openi=<NLMCXR_reports.tgz> "
                               "or set LRCLR_OPENI_REPORTS (or use reports=None)")
        cache = default_cache_dir() if cache_dir == "auto" else (Path(cache_dir) if cache_dir else None)
        rows = [(r.image, r.findings) for r in self.records]
        return composed_reports(rows, openi, self.seed, cache), f"nih+composed:seed{self.seed}"

    def __len__(self) -> int:
        return len(self.records)

    def patient_ids(self) -> list[str]:
        return [r.patient_id for r in self.records]

    def image_ids(self) -> list[str]:
        return [r.image for r in self.records]

    def labels_of(self, index: int) -> dict[str, int]:
        present = set(self.records[index].findings)
        return {name: int(name in present) for name in self.findings}

    def _load(self, index: int) -> Sample:
        record = self.records[index]
        pixels = read_pixels(self._image_path(record.image))
        height, width = pixels.shape
        sx, sy = width / self.bbox_reference_size, height / self.bbox_reference_size
        boxes = {name: [(x * sx, y * sy, (x + w) * sx, (y + h) * sy) for x, y, w, h in found]
                 for name, found in self.boxes.get(record.image, {}).items()}
        report = self.reports.get(record.image)
        return Sample(record.image, record.patient_id, pixels, report.text if report else "",
                      self.labels_of(index), boxes=boxes, source=self.report_source)

    def _image_path(self, image: str) -> Path:
        direct = self.images_dir / image
        if direct.is_file():
            return direct
        if self._image_index is None:
            # The official release splits images over images_001 ... images_012; index them once.
            self._image_index = {p.name: p for p in self.root.glob("images_*/images/*.png")}
        found = self._image_index.get(image)
        if found is None:
            raise SampleReadError(f"NIH image {image} not found in {self.images_dir} or {self.root}/images_*/images")
        return found


def _labels_csv(root: Path) -> Path:
    for name in LABEL_CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"no NIH labels CSV in {root} (looked for {', '.join(LABEL_CSV_NAMES)})")


def _read_records(labels_csv: Path) -> list[NIHRecord]:
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    layout = next((cols for cols in LAYOUTS if set(cols) <= set(header)), None)
    if layout is None:
        raise DatasetError(f"{labels_csv} is not an NIH labels CSV: needs columns {LAYOUTS[0]} or "
                           f"{LAYOUTS[1]}; it has {header}")
    table = read_table(labels_csv, layout, "NIH labels CSV")
    image_col, findings_col, patient_col = layout
    records = []
    for row in table.to_dict("records"):
        findings = tuple(f.strip() for f in row[findings_col].split("|") if f.strip() and f.strip() != NO_FINDING)
        unknown = [f for f in findings if f not in NIH_FINDINGS]
        if unknown:
            raise DatasetError(f"{labels_csv}: image {row[image_col]} has unknown finding(s) {unknown}")
        patient = row[patient_col].strip()
        records.append(NIHRecord(row[image_col].strip(), patient.lstrip("0") or patient, findings))
    return records


def read_bbox_csv(path: Path) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """BBox_List_2017.csv -> image -> finding -> [(x, y, w, h)] in 1024-pixel coordinates.

    Its header is ``Image Index,Finding Label,Bbox [x,y,w,h]`` (so the four numbers sit under the
    split-up names "Bbox [x", "y", "w", "h]") followed by empty columns; rows are read by position.
    """
    if not path.is_file():
        raise DatasetError(f"NIH bounding-box CSV not found: {path}")
    out: dict[str, dict[str, list[tuple[float, float, float, float]]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip() for c in rows[0][:3]] != ["Image Index", "Finding Label", "Bbox [x"]:
        raise DatasetError(f"{path} is not a BBox_List_2017 CSV: expected a header starting "
                           f"'Image Index,Finding Label,Bbox [x,y,w,h]', got {rows[0][:6] if rows else 'nothing'}")
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        name = finding_name(row[1]) if len(row) >= 6 else None
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except ValueError:
            name = None
        if name is None:
            raise DatasetError(f"{path} line {number}: expected image, finding, x, y, w, h; got {row[:6]}")
        out.setdefault(row[0].strip(), {}).setdefault(name, []).append((x, y, w, h))
    return out
