"""Training on a mix: the main dataset's training split plus datasets that only ever train.

A config's ``extra_train`` names datasets (e.g. phantoms next to NIH) that join the training split
whole. They are never split, so nothing of them reaches validation or test, and the numbers a run
reports stay numbers on the main dataset's held-out patients.
"""

from __future__ import annotations

import bisect
from typing import Any, Mapping, Sequence

from train.datasets.sample import Sample
from train.datasets.splits import Subset


class TrainingMix:
    """Several training views behind one index, with the interface the trainer and cache use."""

    def __init__(self, parts: Sequence[Subset]) -> None:
        if not parts:
            raise ValueError("a training mix needs at least one part")
        self.parts = list(parts)
        self.name = "+".join(part.name for part in self.parts)
        self.starts = [0]
        for part in self.parts:
            self.starts.append(self.starts[-1] + len(part))

    def __len__(self) -> int:
        return self.starts[-1]

    def _locate(self, index: int) -> tuple[Subset, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} records")
        part = bisect.bisect_right(self.starts, index) - 1
        return self.parts[part], index - self.starts[part]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __getitem__(self, index: int) -> Sample:
        part, local = self._locate(index)
        return part[local]

    def sample(self, index: int) -> Sample:
        part, local = self._locate(index)
        return part.sample(local)

    def labels_of(self, index: int) -> dict[str, int]:
        part, local = self._locate(index)
        return part.labels_of(local)

    def patient_ids(self) -> list[str]:
        # Prefixed with the part's name: patient "75" of one dataset is not patient "75" of another.
        return [f"{part.name}/{pid}" for part in self.parts for pid in part.patient_ids()]

    def sizes(self) -> dict[str, int]:
        return {part.name: len(part) for part in self.parts}

    def __repr__(self) -> str:
        return f"TrainingMix({', '.join(f'{k}={v}' for k, v in self.sizes().items())})"


def with_extra_training_data(train_split: Subset, extra_specs: Sequence[Mapping[str, Any]]):
    """The training split alone, or a ``TrainingMix`` of it and every dataset in ``extra_specs``."""
    if not extra_specs:
        return train_split
    from train.datasets import build_dataset

    extras = []
    for spec in extra_specs:
        dataset = build_dataset(spec)
        extras.append(Subset(dataset, range(len(dataset)), name=f"{dataset.name}:extra-train"))
    return TrainingMix([train_split, *extras])
