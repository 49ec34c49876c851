"""WebDataset shards: make-shards is deterministic and lossless, bad images are skipped with their
reason, and the shards dataset reads back the source samples and splits like it."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from tests.support.images import dicom_bytes, encode, ramp
from train.cli import main as train_main
from train.datasets import CSVDataset, DatasetError, PhantomDataset, build_dataset
from train.datasets.shards import ShardDataset
from train.datasets.splits import split_dataset


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
