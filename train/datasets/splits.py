"""Patient-disjoint train/val/test splits and a Subset view that keeps the dataset interface.

Each patient is placed by a hash of (seed, patient id) mapped to [0, 1) and compared with the
cumulative fractions, so a patient's split never depends on which other patients exist: adding
images or patients leaves every earlier patient where it was, and every rank or process computes
the same split without communicating. With ``labels``, a finding that would be missing from a split
is moved in (one patient, from a split that has at least two with it) where possible, so every split
can be scored on every finding; only patients with rare findings can move, and deterministically.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Mapping, Sequence

from train.datasets.base import apply_transform
from train.datasets.sample import Sample

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "val", "test")


def _named_fractions(fractions: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(fractions, Mapping):
        named = {str(k): float(v) for k, v in fractions.items()}
    else:
        values = [float(v) for v in fractions]
        if not 1 <= len(values) <= len(SPLIT_NAMES):
            raise ValueError(f"give 1 to 3 fractions (train, val, test) or a dict, not {len(values)}")
        named = dict(zip(SPLIT_NAMES, values))
    if any(v < 0 for v in named.values()) or abs(sum(named.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {named}")
    return named


def patient_position(patient_id: str, seed: int = 0) -> float:
    """A patient's fixed place in [0, 1) for ``seed`` (process-independent, unlike hash())."""
    digest = hashlib.sha256(f"{int(seed)}\x00{patient_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def patient_folds(patient_ids: Sequence[str], folds: int, seed: int = 0) -> list[int]:
    """Each image's cross-validation fold in [0, folds): its patient's hash position, cut in ``folds``
    equal intervals. Patient-grouped (all of a patient's images share a fold) and, like the splits,
    independent of which other patients exist."""
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    return [min(folds - 1, int(patient_position(p, seed) * folds)) for p in patient_ids]


def patient_split(patient_ids: Sequence[str], fractions: Sequence[float] | Mapping[str, float] = DEFAULT_FRACTIONS,
                  seed: int = 0, labels: Sequence[Mapping[str, int]] | None = None) -> dict[str, list[int]]:
    """Indices per split (keys "train", "val", "test", or the dict's names); patient-disjoint."""
    named = _named_fractions(fractions)
    bounds, total = [], 0.0
    for name, fraction in named.items():
        total += fraction
        bounds.append((name, total))
    positions = {p: patient_position(p, seed) for p in set(patient_ids)}
    assignment = {p: next((n for n, b in bounds if u < b), bounds[-1][0]) for p, u in positions.items()}
    if labels is not None:
        if len(labels) != len(patient_ids):
            raise ValueError(f"{len(labels)} label rows for {len(patient_ids)} patient ids")
        _cover_findings(assignment, positions, _patient_findings(patient_ids, labels),
                        {n: (b - f, b) for (n, b), f in zip(bounds, named.values())})
    out: dict[str, list[int]] = {name: [] for name in named}
    for index, patient in enumerate(patient_ids):
        out[assignment[patient]].append(index)
    return out


def _patient_findings(patient_ids, labels) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for patient, row in zip(patient_ids, labels):
        found[patient].update(name for name, value in row.items() if value == 1)
    return found


def _cover_findings(assignment: dict[str, str], positions: dict[str, float],
                    findings: dict[str, set[str]], intervals: dict[str, tuple[float, float]]) -> None:
    """Move single patients so that each finding appears in every non-empty split when it can."""
    splits = [name for name, (low, high) in intervals.items() if high > low]
    all_findings = sorted(set().union(*findings.values())) if findings else []
    for finding in all_findings:
        for target in splits:
            holders = _holders(assignment, findings, finding)
            if holders.get(target):
                continue
            donors = [p for split, ps in holders.items() if len(ps) >= 2 for p in ps
                      if _can_leave(p, assignment, findings)]
            if not donors:
                continue
            low, high = intervals[target]
            # The patient whose hash lies nearest the target's interval moves: a stable, seeded choice.
            chosen = min(donors, key=lambda p: (min(abs(positions[p] - low), abs(positions[p] - high)), p))
            assignment[chosen] = target


def _holders(assignment, findings, finding) -> dict[str, list[str]]:
    holders: dict[str, list[str]] = defaultdict(list)
    for patient, names in findings.items():
        if finding in names:
            holders[assignment[patient]].append(patient)
    return holders


def _can_leave(patient: str, assignment, findings) -> bool:
    """Moving this patient must not take any of its findings out of its current split entirely."""
    split = assignment[patient]
    for name in findings[patient]:
        if not any(other != patient and assignment[other] == split and name in findings[other]
                   for other in findings):
            return False
    return True


class _Inherit:
    def __repr__(self) -> str:
        return "INHERIT"


INHERIT = _Inherit()  # a Subset without its own transform uses the dataset's


class Subset:
    """A view of some indices of a dataset with the same interface (``patient_ids``, ``labels_of``,
    ``set_epoch``, ``sample``). ``transform`` defaults to the dataset's; pass None for evaluation
    splits so the training augmentation never reaches them."""

    def __init__(self, dataset, indices: Sequence[int], transform=INHERIT, name: str | None = None) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self._transform = transform
        self.name = name or getattr(dataset, "name", "dataset")
        self.epoch = 0

    @property
    def transform(self):
        return self.dataset.transform if self._transform is INHERIT else self._transform

    @transform.setter
    def transform(self, value) -> None:
        self._transform = value

    @property
    def seed(self) -> int:
        return self.dataset.seed

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, index: int) -> Sample:
        return self.dataset.sample(self.indices[index])

    def __getitem__(self, index: int) -> Sample:
        parent_index = self.indices[index]
        # Seeded by the parent's index: an image gets the same augmentation in every view of it.
        return apply_transform(self.transform, self.dataset.sample(parent_index), self.seed, self.epoch,
                               parent_index)

    def patient_ids(self) -> list[str]:
        ids = self.dataset.patient_ids()
        return [ids[i] for i in self.indices]

    def labels_of(self, index: int) -> dict[str, int]:
        return self.dataset.labels_of(self.indices[index])

    def __repr__(self) -> str:
        return f"Subset(name={self.name!r}, records={len(self)})"


def split_dataset(dataset, fractions: Sequence[float] | Mapping[str, float] = DEFAULT_FRACTIONS, seed: int = 0,
                  stratify: bool = True, train_split: str = "train") -> dict[str, Subset]:
    """Subsets per split; only ``train_split`` keeps the dataset's transform (augmentation)."""
    labels = [dataset.labels_of(i) for i in range(len(dataset))] if stratify else None
    indices = patient_split(dataset.patient_ids(), fractions, seed, labels)
    return {name: Subset(dataset, idx, INHERIT if name == train_split else None, f"{dataset.name}:{name}")
            for name, idx in indices.items()}
