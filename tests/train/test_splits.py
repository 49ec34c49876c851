"""Patient-disjoint splits: disjoint, deterministic, stable as data grows, roughly the fractions."""

from __future__ import annotations

import pytest

from tests.support.paths import require_shared
from train.datasets import NIHDataset, PhantomDataset
from train.datasets.splits import Subset, patient_split, split_dataset


def _patients(n_patients: int, images_each: int = 2, prefix: str = "p") -> list[str]:
    return [f"{prefix}{i}" for i in range(n_patients) for _ in range(images_each)]


def _patients_of(ids, indices) -> set[str]:
    return {ids[i] for i in indices}


def test_split_is_patient_disjoint_complete_and_deterministic():
    ids = _patients(500, 3)
    split = patient_split(ids, seed=7)
    assert set(split) == {"train", "val", "test"}
    assert sorted(i for idx in split.values() for i in idx) == list(range(len(ids)))
    groups = [_patients_of(ids, idx) for idx in split.values()]
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert patient_split(ids, seed=7) == split
    assert patient_split(ids, seed=8) != split


def test_fractions_are_roughly_right():
    ids = _patients(10_000, 1)
    split = patient_split(ids, (0.7, 0.2, 0.1))
    shares = {name: len(idx) / len(ids) for name, idx in split.items()}
    assert shares == pytest.approx({"train": 0.7, "val": 0.2, "test": 0.1}, abs=0.02)
    named = patient_split(ids, {"fit": 0.5, "holdout": 0.5})
    assert set(named) == {"fit", "holdout"} and abs(len(named["fit"]) / len(ids) - 0.5) < 0.02


def test_adding_patients_moves_nobody_already_placed():
    old = _patients(300)
    new = old + _patients(100, prefix="q")  # appended later, e.g. a second download
    before, after = patient_split(old), patient_split(new)
    where = {name: _patients_of(new, idx) for name, idx in after.items()}
    for name, idx in before.items():
        assert _patients_of(old, idx) <= where[name]


def test_bad_fractions_are_refused():
    for bad in [(0.5, 0.4), (0.8, 0.3, -0.1), (0.2, 0.2, 0.2, 0.4)]:
        with pytest.raises(ValueError, match="fractions"):
            patient_split(["a"], bad)


def test_stratification_puts_a_rare_finding_in_every_split():
    ids = _patients(60, 1)
    labels = [{"Hernia": int(i < 3)} for i in range(60)]  # three patients with the rare finding
    plain = patient_split(ids, seed=0)
    strat = patient_split(ids, seed=0, labels=labels)
    for name, idx in strat.items():
        assert any(labels[i]["Hernia"] for i in idx), name
    moved = sum(_patients_of(ids, plain[n]) != _patients_of(ids, strat[n]) for n in plain)
    assert moved <= 3  # only the rare patients can move; the rest stay at their hashed split
    assert patient_split(ids, seed=0, labels=labels) == strat


def test_subset_keeps_the_interface_and_split_dataset_augments_train_only():
    def tag(sample, rng):
        sample.report = "augmented"
        return sample
    dataset = PhantomDataset(12, size=40, transform=tag)
    parts = split_dataset(dataset, (0.5, 0.25, 0.25), seed=1)
    train, val = parts["train"], parts["val"]
    assert isinstance(train, Subset) and len(train) + len(val) + len(parts["test"]) == 12
    assert train.patient_ids() == [dataset.patient_ids()[i] for i in train.indices]
    assert train.labels_of(0) == dataset.labels_of(train.indices[0])
    if len(train):
        assert train[0].report == "augmented"
    if len(val):
        assert val[0].report != "augmented" and val.transform is None


@pytest.mark.shared_data
def test_real_nih_sample_split_is_patient_disjoint():
    dataset = NIHDataset(require_shared("nih-cxr14-sample"), reports=None)
    split = patient_split(dataset.patient_ids(), labels=[dataset.labels_of(i) for i in range(len(dataset))])
    ids = dataset.patient_ids()
    groups = {name: _patients_of(ids, idx) for name, idx in split.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert not (groups["val"] & groups["test"])
    assert 0.7 < len(split["train"]) / len(dataset) < 0.9
    for name, idx in split.items():  # every finding (Edema has 7 images) reaches every split
        present = {k for i in idx for k, v in dataset.labels_of(i).items() if v}
        assert len(present) == 14, (name, present)
