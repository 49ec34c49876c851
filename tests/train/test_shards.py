"""WebDataset shards: make-shards is deterministic and lossless, bad images are skipped with their
reason, the shards dataset reads back the source samples and splits like it, and training streams
them per rank with exact resume (one process, loader workers, and two gloo processes)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from lrclr.model.config import tiny_config
from tests.support.images import dicom_bytes, encode, ramp
from tests.support.paths import REPO_ROOT
from train.cli import main as train_main
from train.datasets import CSVDataset, DatasetError, PhantomDataset, build_dataset
from train.datasets.shards import ShardDataset
from train.datasets.splits import split_dataset
from train.training.checkpoint import latest_checkpoint
from train.training.run_config import TrainConfig
from train.training.shard_stream import ShardTraining, StreamLayout, deal, shuffle_buffer
from train.training.trainer import Trainer


def _phantoms(n: int, **extra) -> dict:
    return {"kind": "phantoms", "n": n, "size": 48, **extra}


def _make(spec: dict, out, *options: str) -> dict:
    assert train_main(["make-shards", "--dataset", json.dumps(spec), "--out", str(out), *options]) == 0
    return json.loads((out / "index.json").read_text())


def _shards(out, **options) -> ShardDataset:
    return build_dataset({"kind": "shards", "index": str(out / "index.json"), **options})


def _assert_same_sample(a, b) -> None:
    assert (a.image_id, a.patient_id, a.report, a.labels, a.source) == (b.image_id, b.patient_id, b.report,
                                                                         b.labels, b.source)
    assert a.pixels.dtype == b.pixels.dtype and np.array_equal(a.pixels, b.pixels)
    assert a.masks.keys() == b.masks.keys() and all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert a.boxes == b.boxes


# --- make-shards ---------------------------------------------------------------------------------


def test_make_shards_is_byte_identical_across_runs_and_its_index_describes_the_shards(tmp_path):
    spec = _phantoms(10)
    # ~12 kB per phantom: a 40 kB limit closes shards by size before the count limit of 4.
    args = ("--samples-per-shard", "4", "--max-shard-bytes", "40000")
    first, second = _make(spec, tmp_path / "a", *args), _make(spec, tmp_path / "b", *args)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first == second
    shards = first["shards"]
    assert files == ["index.json", *[s["name"] for s in shards]]
    assert len(shards) > 3 and sum(s["samples"] for s in shards) == 10  # 3 would do by count alone
    for shard in shards:
        data = (tmp_path / "a" / shard["name"]).read_bytes()
        assert len(data) == shard["bytes"] <= 40000 and hashlib.sha256(data).hexdigest() == shard["sha256"]
        with tarfile.open(tmp_path / "a" / shard["name"]) as tar:
            members = tar.getmembers()
        assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "lrclr", 0o444)}
        assert [m.name for m in members] == sorted(m.name for m in members)
    source = PhantomDataset(10, size=48)
    assert first["samples"] == {"records": list(range(10)), "patient_ids": source.patient_ids(),
                                "labels": first["samples"]["labels"]}
    assert first["source"] == {"spec": spec, "split": None, "records": 10}
    assert first["counts"] == {"samples": 10, "shards": len(shards), "skipped": 0} and first["skipped"] == []
    shard_set = _shards(tmp_path / "a")
    assert [shard_set.labels_of(i) for i in range(10)] == [source.labels_of(i) for i in range(10)]


def _csv_dataset(folder) -> tuple[CSVDataset, dict[str, bytes]]:
    """Four radiographs (PNG, 16-bit PNG, JPEG, DICOM with a patient's name in its header) and a
    corrupt file, each of its own patient."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = {
        "a.png": encode(Image.fromarray((rng.random((40, 30)) * 255).astype(np.uint8)), "PNG"),
        "b.png": encode(Image.fromarray(ramp(24, 32).astype(np.uint16) * 16), "PNG"),
        "c.jpg": encode(Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)), "JPEG", quality=90),
        "d.dcm": dicom_bytes(ramp(20, 36)),
        "bad.png": b"this is not an image",
    }
    rows = []
    for number, (name, data) in enumerate(files.items()):
        (folder / name).write_bytes(data)
        rows.append({"image": name, "report": f"Report {number}: small left effusion.", "patient_id": f"P{number}",
                     "Effusion": str(number % 2), "Cardiomegaly": "-1" if number == 2 else ""})
    with open(folder / "pairs.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return CSVDataset(folder / "pairs.csv"), files


def test_original_files_round_trip_a_corrupt_one_is_skipped_and_no_identifier_is_copied(tmp_path, capsys):
    source, files = _csv_dataset(tmp_path / "data")
    index = _make({"kind": "csv", "csv_path": str(tmp_path / "data" / "pairs.csv")}, tmp_path / "shards")
    assert index["counts"] == {"samples": 4, "shards": 1, "skipped": 1}
    (skipped,) = index["skipped"]
    assert skipped["record"] == 4 and "not a PNG, JPEG or DICOM" in skipped["reason"]
    assert str(tmp_path) not in skipped["reason"] and "bad.png" not in skipped["reason"]
    printed = capsys.readouterr().err  # the console gets the full path, to find the file
    assert "record 4: skipped" in printed and str(tmp_path / "data" / "bad.png") in printed
    text = (tmp_path / "shards" / "index.json").read_text()
    assert all(name not in text for name in files)  # image ids stay inside the shards
    assert index["samples"]["patient_ids"] == ["P0", "P1", "P2", "P3"]
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as tar:
        stored = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    # PNG and JPEG files are stored as they are: training decodes the same bytes the same way.
    assert stored["000000000.png"] == files["a.png"] and stored["000000001.png"] == files["b.png"]
    assert stored["000000002.jpg"] == files["c.jpg"]
    # The DICOM keeps its image elements only: the name and MRN in its header do not travel.
    assert b"Doe^Jane" in files["d.dcm"] and b"MRN-0042" in files["d.dcm"]
    assert b"Doe^Jane" not in stored["000000003.dcm"] and b"MRN-0042" not in stored["000000003.dcm"]
    shard_set = _shards(tmp_path / "shards")
    assert len(shard_set) == 4
    for i in range(4):
        _assert_same_sample(shard_set[i], source[i])
        assert shard_set.labels_of(i) == source.labels_of(i)


def test_phantoms_round_trip_with_masks_and_the_source_max_side(tmp_path):
    spec = _phantoms(6, max_side=32)
    _make(spec, tmp_path / "shards", "--samples-per-shard", "4")
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as tar:
        assert "000000000.npy" in tar.getnames()  # generated pixels: stored as float32, full size
    source, shard_set = build_dataset(spec), _shards(tmp_path / "shards")
    assert shard_set.max_side == 32 and any(source[i].masks for i in range(6))
    for i in range(6):
        _assert_same_sample(shard_set[i], source[i])
    assert _shards(tmp_path / "shards", max_side=None)[0].pixels.shape == (48, 48)


def test_a_split_is_sharded_as_training_splits_and_shards_split_like_their_source(tmp_path):
    spec, fractions = _phantoms(40), ("0.6", "0.2", "0.2")
    index = _make(spec, tmp_path / "val", "--split", "val", "--split-fractions", *fractions, "--split-seed", "3")
    splits = split_dataset(build_dataset(spec), (0.6, 0.2, 0.2), 3)
    assert index["samples"]["records"] == splits["val"].indices
    assert index["source"]["split"] == {"name": "val", "fractions": [0.6, 0.2, 0.2], "seed": 3}
    _make(spec, tmp_path / "all")
    from_shards = split_dataset(_shards(tmp_path / "all"), (0.6, 0.2, 0.2), 3)
    assert {k: v.indices for k, v in from_shards.items()} == {k: v.indices for k, v in splits.items()}


def test_bad_input_gets_a_clear_message(tmp_path, capsys):
    _make(_phantoms(3), tmp_path / "shards")
    assert train_main(["make-shards", "--dataset", json.dumps(_phantoms(3)), "--out", str(tmp_path / "shards")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert train_main(["make-shards", "--dataset", json.dumps(_phantoms(3)), "--out", str(tmp_path / "shards"),
                       "--samples-per-shard", "0", "--overwrite"]) == 2
    assert "at least 1" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="make-shards"):
        _shards(tmp_path / "missing")
    with pytest.raises(DatasetError, match="shard_sampling must be one of"):
        _shards(tmp_path / "shards", shard_sampling="random")
    shard = tmp_path / "shards" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-10240])
    with pytest.raises(DatasetError, match="partly copied"):
        _shards(tmp_path / "shards")


# --- the stream ----------------------------------------------------------------------------------


def test_dealing_balances_readers_and_the_buffer_is_a_seeded_permutation():
    # Shard 3 (4 samples) to reader 0, shard 0 (5) to reader 1, shard 2 (1) to the lighter reader 0;
    # shard 1 holds no training sample and goes to no one.
    assert deal([3, 0, 2, 1], [5, 0, 1, 4], 2) == [[3, 2], [0]]
    assert deal([0, 1, 2], [2, 2, 2], 2) == [[0, 2], [1]]  # equal loads: the lowest reader
    items = [(0, i) for i in range(50)]
    shuffled = shuffle_buffer(items, 8, np.random.default_rng(1))
    assert sorted(shuffled) == items and shuffled != items
    assert shuffled == shuffle_buffer(items, 8, np.random.default_rng(1))
    assert shuffle_buffer(items, 0, np.random.default_rng(1)) == items


def _collate(batch):
    return [sample.image_id for sample in batch]


def test_every_reader_gets_equal_batches_and_each_sample_at_most_once(tmp_path):
    _make(_phantoms(23), tmp_path / "shards", "--samples-per-shard", "3")  # 8 shards, the last of 2
    shard_set = _shards(tmp_path / "shards", shuffle_buffer=5)
    layouts = [StreamLayout(seed=4, batch_size=2, rank=r, world_size=2, num_workers=2) for r in range(2)]
    for epoch in range(3):
        plans = [ShardTraining.of(shard_set, layout).plan(epoch) for layout in layouts]
        assert plans[0] == plans[1]  # every rank computes the same plan from the index alone
        plan = plans[0]
        assert sorted(plan.readers) == [0, 1, 2, 3]
        own = ShardTraining.of(shard_set, layouts[1]).plan(epoch, layouts[1].own_readers())
        assert own.readers == {2: plan.readers[2], 3: plan.readers[3]} and own.dropped == plan.dropped
        used = [item for reader in plan.readers.values() for item in reader.order[: plan.batches_per_reader * 2]]
        assert len(used) == len(set(used)) == 23 - plan.dropped and plan.batches_per_reader >= 2
    replacement = _shards(tmp_path / "shards", shard_sampling="replacement")
    drawn = [s for r in ShardTraining.of(replacement, layouts[0]).plan(0).readers.values() for s in r.shards]
    assert len(drawn) == 8 and len(set(drawn)) < 8  # with replacement: some shard twice (seeded)


def test_training_views_over_shards_are_streamed_and_mixes_are_not(tmp_path):
    from train.commands.cross_validate import IndexedView
    from train.datasets.held_out import HeldOutView
    from train.datasets.mixed import TrainingMix
    from train.datasets.shards import shard_backing
    from train.datasets.splits import Subset

    _make(_phantoms(8), tmp_path / "shards")
    shard_set = _shards(tmp_path / "shards")
    split = Subset(shard_set, [1, 3, 5, 7])
    assert shard_backing(shard_set) == (shard_set, list(range(8)))
    assert shard_backing(HeldOutView(Subset(split, [3, 0]), ["Effusion"])) == (shard_set, [7, 1])
    assert shard_backing(IndexedView(split, [2, 1], "cv-train")) == (shard_set, [5, 3])  # a cross-validation fold
    assert shard_backing(TrainingMix([split, Subset(PhantomDataset(2, size=48), [0, 1])])) is None
    assert shard_backing(PhantomDataset(2, size=48)) is None


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_started_at_batch_k_continues_the_uninterrupted_one(tmp_path, workers):
    """With loader workers, each serves one reader and the loader takes their batches in turn."""
    _make(_phantoms(20), tmp_path / "shards", "--samples-per-shard", "3")
    training = ShardTraining.of(_shards(tmp_path / "shards", shuffle_buffer=4),
                                StreamLayout(seed=2, batch_size=2, num_workers=workers))
    full = list(training.loader(1, 0, _collate))
    assert len(full) >= 6 and len({i for batch in full for i in batch}) == 2 * len(full)
    for start in (1, 3):
        assert list(training.loader(1, start, _collate)) == full[start:]
    assert list(training.loader(2, 0, _collate)) != full  # a new epoch, a new order


# --- training ------------------------------------------------------------------------------------


def _config(tmp_path, **overrides) -> TrainConfig:
    values = dict(model=tiny_config().to_dict(), batch_size=4, max_steps=6, lr=3e-3, tower_lr=3e-3, warmup_steps=2,
                  freeze=[], checkpoint_every=3, eval_every=0, output_dir=str(tmp_path / "run"), seed=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_one_epoch_without_shuffling_visits_the_map_style_samples(tmp_path):
    _make(_phantoms(12), tmp_path / "shards", "--samples-per-shard", "5")
    shard_set = _shards(tmp_path / "shards", shard_sampling="sequential", shuffle_buffer=0)
    runs = {}
    for name, data in (("map", PhantomDataset(12, size=48)), ("shards", shard_set)):
        trainer = Trainer(_config(tmp_path / name), data, [], resume=False, show_progress=False)
        batches = list(trainer._epoch_batches(0, 0))
        assert [len(b.image_ids) for b in batches] == [4, 4, 4]
        runs[name] = {i: pixels for b in batches for i, pixels in zip(b.image_ids, b.pixels)}
        assert (trainer.shard_training is not None) == (name == "shards")
    assert sorted(runs["map"]) == sorted(runs["shards"]) == [f"phantom-{i:06d}" for i in range(12)]
    for image_id, pixels in runs["map"].items():
        assert torch.equal(pixels, runs["shards"][image_id]), image_id


def test_resume_on_shards_after_n_steps_equals_an_uninterrupted_2n_step_run(tmp_path):
    _make(_phantoms(10), tmp_path / "shards", "--samples-per-shard", "3")  # 2 batches of 4 an epoch
    data = _shards(tmp_path / "shards", shuffle_buffer=4)
    common = dict(max_steps=6)
    straight = Trainer(_config(tmp_path / "a", **common), data, [], resume=False, show_progress=False)
    assert straight.shard_training is not None
    straight.fit()
    first = Trainer(_config(tmp_path / "b", **common), data, [], show_progress=False)
    first.fit(stop_at_step=3)
    assert latest_checkpoint(tmp_path / "b" / "run").name == "checkpoint-000003"
    resumed = Trainer(_config(tmp_path / "b", **common), data, [], show_progress=False)
    assert resumed.state.step == 3 and (resumed.state.epoch, resumed.state.batches_in_epoch) == (1, 1)
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_pretrain_command_trains_on_the_training_split_of_shards(tmp_path):
    spec = _phantoms(30)
    _make(spec, tmp_path / "shards", "--samples-per-shard", "4")
    run = tmp_path / "run"
    shards_spec = json.dumps({"kind": "shards", "index": str(tmp_path / "shards" / "index.json")})
    assert train_main(["pretrain", "--set", f"model={json.dumps(tiny_config().to_dict())}", "--set",
                       f"dataset={shards_spec}", "--set", "max_steps=2", "--set", "batch_size=4", "--set",
                       "eval_every=2", "--set", "checkpoint_every=2", "--set", f"output_dir={run}"]) == 0
    info = json.loads((run / "run_info.json").read_text())
    source_splits = split_dataset(build_dataset(spec), (0.8, 0.1, 0.1), 0)
    assert info["training_data"]["split_sizes"] == {k: len(v) for k, v in source_splits.items()}
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_two_gloo_processes_on_shards_cover_each_sample_once_per_epoch_in_equal_batches(tmp_path):
    _make(_phantoms(32), tmp_path / "shards", "--samples-per-shard", "4")  # 8 shards: 4 per rank
    spec = {"kind": "shards", "index": str(tmp_path / "shards" / "index.json"), "shuffle_buffer": 6}
    config = _config(tmp_path, dataset=spec, max_steps=8, checkpoint_every=8)  # 2 epochs of 4 steps x 2 x 4
    config.model["text_tower"]["options"]["dropout"] = 0.0
    config.save(tmp_path / "config.json")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "tests.support.shard_probe", str(tmp_path / "config.json"), str(tmp_path / "seen.json")]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = json.loads((tmp_path / "seen.json").read_text())["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all([len(batch) for batch in r["batches"]] == [4] * 8 for r in ranks)  # equal sizes, every step
    everything = sorted(f"phantom-{i:06d}" for i in range(32))
    for epoch in range(2):
        seen = [i for r in ranks for batch in r["batches"][4 * epoch: 4 * epoch + 4] for i in batch]
        assert sorted(seen) == everything, epoch  # each sample exactly once per epoch, across the ranks
    assert ranks[0]["batches"][:4] != ranks[0]["batches"][4:]  # reshuffled per epoch
    # Each rank read what the plan (index + seed + epoch + rank) says, so a restart can recompute it.
    shard_set = _shards(tmp_path / "shards", shuffle_buffer=6)
    for rank in range(2):
        training = ShardTraining.of(shard_set, StreamLayout(seed=1, batch_size=4, rank=rank, world_size=2))
        assert list(training.loader(1, 0, _collate)) == ranks[rank]["batches"][4:]
