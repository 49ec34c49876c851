"""Findings held out of training entirely, so that their AUC is a genuinely zero-shot figure.

The bundled model learns the 14 NIH findings from composed reports that state them, so its AUC on
those findings measures learning from (noisy) labels, not zero-shot recognition. A run with
``held_out_findings`` removes everything the model could learn a held-out finding from:

- every report sentence in which the project's labeler finds the finding mentioned at all
  (asserted, denied or hedged: "No pneumothorax." teaches the word as much as "Pneumothorax."),
  in NIH composed reports and phantom reports alike;
- the finding's labels (no prompt-score or soft-target term sees them) and its masks (no
  localization term trains on them).

Its prompts are never trained; scoring the held-out findings after such a run is zero-shot in the
sense CheXzero uses. What the labeler misses (a synonym it has no pattern for) can still leak; the
labeler's recall on OpenI is in BENCHMARKS.md.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Sequence

from lrclr.reports.labeler import label_sentence
from lrclr.reports.text import split_sentences
from train.datasets.sample import Sample


def strip_findings(report: str, findings: Sequence[str] | frozenset[str]) -> str:
    """The report without the sentences that mention any of ``findings`` (per the labeler)."""
    return _strip(report, frozenset(findings))


@lru_cache(maxsize=20_000)
def _strip(report: str, findings: frozenset[str]) -> str:
    if not findings:
        return report
    kept = [s.text for s in split_sentences(report)
            if not any(m.finding in findings for m in label_sentence(s.text).mentions)]
    return " ".join(kept)


def hold_out(sample: Sample, findings: frozenset[str]) -> Sample:
    """The sample as a held-out run trains on it (see the module docstring)."""
    if not findings:
        return sample
    return replace(
        sample,
        report=strip_findings(sample.report, findings),
        labels={k: v for k, v in sample.labels.items() if k not in findings},
        masks={k: v for k, v in sample.masks.items() if k not in findings},
        boxes={k: v for k, v in sample.boxes.items() if k not in findings},
    )


class HeldOutView:
    """A training set with ``findings`` held out of every sample; the dataset interface is kept."""

    def __init__(self, dataset, findings: Sequence[str]) -> None:
        self.dataset = dataset
        self.findings = frozenset(findings)
        self.name = getattr(dataset, "name", "dataset")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        return hold_out(self.dataset[index], self.findings)

    def sample(self, index: int) -> Sample:
        return hold_out(self.dataset.sample(index), self.findings)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def labels_of(self, index: int) -> dict[str, int]:
        return {k: v for k, v in self.dataset.labels_of(index).items() if k not in self.findings}

    def patient_ids(self) -> list[str]:
        return self.dataset.patient_ids()

    def sizes(self) -> dict[str, int]:
        return self.dataset.sizes() if hasattr(self.dataset, "sizes") else {self.name: len(self)}
