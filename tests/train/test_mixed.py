"""Extra training-only datasets (``extra_train``): they train, and never reach validation or test."""

from __future__ import annotations

import json

import pytest

from train.datasets import PhantomDataset
from train.datasets.mixed import TrainingMix, with_extra_training_data
from train.datasets.splits import Subset, split_dataset


def _tag(text):
    def transform(sample, rng):
        sample.report = text
        return sample
    return transform


def test_mix_indexes_every_part_in_order_with_each_part_s_own_transform():
    main = split_dataset(PhantomDataset(12, size=40, transform=_tag("main")), (0.5, 0.25, 0.25), seed=1)["train"]
    extra = PhantomDataset(5, start=500, size=40, transform=_tag("extra"))
    mix = TrainingMix([main, Subset(extra, range(5), name="extra")])
    assert len(mix) == len(main) + 5
    assert [mix.sample(i).image_id for i in range(len(mix))] == (
        [main.sample(i).image_id for i in range(len(main))] + [extra.image_id(i) for i in range(5)])
    assert mix[0].report == "main" and mix[len(main)].report == "extra"
    assert mix.labels_of(len(main) + 2) == extra.labels_of(2)
    assert mix.sizes() == {main.name: len(main), "extra": 5}
    ids = mix.patient_ids()
    assert len(ids) == len(mix) and ids[len(main)] == f"extra/{extra.patient_ids()[0]}"
    mix.set_epoch(3)
    assert all(part.epoch == 3 for part in mix.parts)
    with pytest.raises(IndexError):
        mix[len(mix)]


def test_without_extra_specs_the_training_split_is_used_as_it_is():
    train = split_dataset(PhantomDataset(8, size=40), (0.5, 0.25, 0.25), seed=0)["train"]
    assert with_extra_training_data(train, []) is train


def test_extra_datasets_join_training_whole_and_keep_their_augmentation():
    train = split_dataset(PhantomDataset(8, size=40), (0.5, 0.25, 0.25), seed=0)["train"]
    spec = {"kind": "phantoms", "n": 6, "start": 900, "size": 40, "augment": True}
    mix = with_extra_training_data(train, [spec])
    assert isinstance(mix, TrainingMix) and len(mix) == len(train) + 6
    extra = mix.parts[1]
    assert extra.transform is not None and extra.indices == list(range(6))


def test_a_run_with_extra_training_data_trains_on_it_and_records_it(tmp_path):
    from lrclr.model.config import tiny_config
    from train.cli import main as train_main

    run_dir = tmp_path / "run"
    main_data = {"kind": "phantoms", "n": 20, "size": 64}
    extra = [{"kind": "phantoms", "n": 12, "start": 5000, "size": 64}]
    args = ["pretrain", "--set", f"model={json.dumps(tiny_config().to_dict())}",
            "--set", f"dataset={json.dumps(main_data)}", "--set", f"extra_train={json.dumps(extra)}",
            "--set", "max_steps=2", "--set", "batch_size=8", "--set", "eval_every=2",
            "--set", "checkpoint_every=2", "--set", f"output_dir={run_dir}"]
    assert train_main(args) == 0
    info = json.loads((run_dir / "run_info.json").read_text())
    split_sizes = info["training_data"]["split_sizes"]
    assert sum(split_sizes.values()) == 20  # the extra phantoms are in no split
    assert info["extra_training_data"]["specs"] == extra
    assert info["extra_training_data"]["sizes"]["phantom:extra-train"] == 12
    assert sum(info["extra_training_data"]["sizes"].values()) == split_sizes["train"] + 12
    assert train_main(["export", str(run_dir), "--out", str(tmp_path / "model")]) == 0
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["extra_training_data"]["specs"] == extra
