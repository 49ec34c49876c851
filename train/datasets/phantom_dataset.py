"""Synthetic radiographs (``train.synthetic.phantoms``) with exact finding masks: localization ground truth.

Phantom ``i`` uses seed ``start + i`` and is generated in ``__getitem__``; nothing is stored. Its
labels are every NIH finding, 1 for each finding drawn and 0 for the rest (a phantom has exactly
what it renders). Reports are real OpenI reports when ``openi`` (or a ``ReportBank``) is given,
else the built-in templates.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lrclr.reports.labeler import NIH_FINDINGS
from train.synthetic.phantoms import ReportBank, generate_phantom
from train.datasets.base import ImageReportDataset
from train.datasets.sample import Sample

# Labels are read from a phantom this small: the finding choice depends on the seed only, and
# generating one costs ~1.5 ms, so labels_of stays cheap without copying the generator's internals.
_LABEL_PROBE_SIZE = 32


@lru_cache(maxsize=2)
def report_bank_from_openi(path: str) -> ReportBank:
    return ReportBank.from_openi(path)


class PhantomDataset(ImageReportDataset):
    name = "phantom"

    def __init__(self, n: int, start: int = 0, size: int | tuple[int, int] = 320,
                 openi: str | Path | None = None, report_bank: ReportBank | None = None, **options) -> None:
        super().__init__(**options)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.start = int(n), int(start)
        self.size = size if isinstance(size, int) else tuple(size)
        self.report_bank = report_bank or (report_bank_from_openi(str(Path(openi).resolve())) if openi else None)
        self._labels: dict[int, dict[str, int]] = {}

    def __len__(self) -> int:
        return self.n

    def image_id(self, index: int) -> str:
        return f"phantom-{self.start + index:06d}"

    def patient_ids(self) -> list[str]:
        return [self.image_id(i) for i in range(self.n)]

    def labels_of(self, index: int) -> dict[str, int]:
        index = self._check_index(index)
        if index not in self._labels:
            probe = generate_phantom(self.start + index, _LABEL_PROBE_SIZE, report_bank=self.report_bank)
            self._labels[index] = _labels({spec.name for spec in probe.findings})
        return dict(self._labels[index])

    def _load(self, index: int) -> Sample:
        phantom = generate_phantom(self.start + index, self.size, report_bank=self.report_bank)
        labels = _labels({spec.name for spec in phantom.findings})
        self._labels[index] = labels
        return Sample(self.image_id(index), self.image_id(index), phantom.image, phantom.report, dict(labels),
                      masks=dict(phantom.masks), source=f"phantom:{phantom.report_provenance}")


def _labels(drawn: set[str]) -> dict[str, int]:
    return {name: int(name in drawn) for name in NIH_FINDINGS}
