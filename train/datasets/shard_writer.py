"""Writing a dataset (or one split of it) as WebDataset tar shards plus ``index.json``.

Deterministic: the same records give byte-identical shards and index. Records are written in
ascending order; members in sorted order within a sample (webdataset's TarWriter); every tar header
has the same mtime (0), owner (0/0, "lrclr") and mode (0444); nothing time- or host-dependent is
written. Atomic: each shard is written under a temporary name and renamed when complete, and the
index is written last, the same way, so a folder without ``index.json`` is an unfinished set.

Unreadable records (the dataset's ``SampleReadError``) are reported with their reason and skipped;
the index counts them. Any other error is a bug and stops the run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lrclr.findings import NIH_FINDINGS
from lrclr.imaging.reading import sniff_format
from train.datasets.base import DatasetError, SampleReadError, recorded_image_reads
from train.datasets.sample import Sample
from train.datasets.shard_dicom import minimal_dicom
from train.datasets.shard_format import (
    INDEX_NAME, ShardIndex, ShardInfo, SkippedRecord, encode_sample, label_code, redact_paths, sample_key,
)

SHARD_PATTERN = "shard-{:06d}.tar"
_BLOCK = 512  # tar header and data granularity
_TAR_END = 2 * _BLOCK  # the two zero blocks that close an archive
_RECORD = 20 * _BLOCK  # tarfile pads an archive to a whole number of these


@dataclass(frozen=True)
class ShardOptions:
    samples_per_shard: int = 1000
    # A shard is closed before a sample would take its file past this many bytes; a sample bigger
    # than that alone gets a shard of its own. None: no limit.
    max_shard_bytes: int | None = 1 << 30

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise ValueError(f"samples per shard must be at least 1, got {self.samples_per_shard}")
        if self.max_shard_bytes is not None and self.max_shard_bytes < _RECORD:
            raise ValueError(f"max shard bytes must be at least {_RECORD} (one tar record), got {self.max_shard_bytes}")


class _HashingFile:
    """What tarfile writes to: the file, with its SHA-256 and size computed on the way."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


def _member_bytes(members: dict[str, bytes]) -> int:
    return sum(_BLOCK + -(-len(data) // _BLOCK) * _BLOCK for data in members.values())


def _file_bytes(member_bytes: int) -> int:
    """The size of a tar file whose members take ``member_bytes`` (headers and padded data)."""
    return -(-(member_bytes + _TAR_END) // _RECORD) * _RECORD


@dataclass
class _ShardSequence:
    """Rolls over to a new shard by sample count or size; each shard is renamed into place when closed."""

    out: Path
    options: ShardOptions
    shards: list[ShardInfo] = field(default_factory=list)
    _file: _HashingFile | None = None
    _tar: Any = None
    _count: int = 0
    _size: int = 0

    def add(self, key: str, members: dict[str, bytes]) -> None:
        size = _member_bytes(members)
        limit = self.options.max_shard_bytes
        if self._tar is not None and (self._count >= self.options.samples_per_shard
                                      or (limit is not None and _file_bytes(self._size + size) > limit)):
            self.close()
        if self._tar is None:
            self._open()
        self._tar.write({"__key__": key, **members})
        self._count += 1
        self._size += size

    def _open(self) -> None:
        from webdataset import TarWriter

        self._file = _HashingFile(self._temporary(len(self.shards)))
        self._tar = TarWriter(self._file, user="lrclr", group="lrclr", mode=0o444, encoder=False, mtime=0)
        self._count = self._size = 0

    def _temporary(self, number: int) -> Path:
        return self.out / f".{SHARD_PATTERN.format(number)}.tmp-{os.getpid()}"

    def close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self._file.close()
        name = SHARD_PATTERN.format(len(self.shards))
        os.replace(self._temporary(len(self.shards)), self.out / name)
        self.shards.append(ShardInfo(name, self._count, self._file.size, self._file.sha256.hexdigest()))
        self._tar = self._file = None


def original_image_file(sample: Sample, reads: list[tuple[Path, np.ndarray]], key: str) -> bytes | None:
    """The file's bytes when the record's pixels are exactly what that one file decoded to (a DICOM
    without its patient header: shard_dicom.py); None: store the pixels themselves."""
    if len(reads) != 1:
        return None
    path, pixels = reads[0]
    if pixels is not sample.pixels and not (pixels.shape == sample.pixels.shape
                                            and np.array_equal(pixels, sample.pixels)):
        return None
    data = path.read_bytes()
    return minimal_dicom(data, key, pixels) if sniff_format(data) == "dicom" else data


def ordered_label_names(rows: Sequence[dict[str, int]]) -> list[str]:
    seen = {name for row in rows for name in row}
    return [f for f in NIH_FINDINGS if f in seen] + sorted(seen - set(NIH_FINDINGS))


def write_shards(dataset, records: Sequence[int], out: Path, options: ShardOptions, source: dict[str, Any],
                 overwrite: bool = False, report: Callable[[str], None] = print,
                 progress: bool = False) -> ShardIndex:
    """Write ``dataset``'s ``records`` (its own indices, ascending) as shards in ``out``."""
    out = Path(out)
    index_path = out / INDEX_NAME
    if index_path.exists() and not overwrite:
        raise DatasetError(f"{out} already holds a shard set ({INDEX_NAME}); pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    index_path.unlink(missing_ok=True)  # from here until the new index lands, the folder is unfinished
    sequence = _ShardSequence(out, options)
    kept: list[tuple[int, str, dict[str, int]]] = []
    skipped: list[SkippedRecord] = []
    # The index's patient ids and labels are the ones the source splits by, so that splitting the
    # shards gives the source's split.
    patient_ids = dataset.patient_ids()
    for record in _progress(sorted(int(r) for r in records), progress):
        try:
            with recorded_image_reads() as reads:
                # The record as stored (full size, untransformed): max_side applies when shards are read.
                sample = dataset._load(record)
        except SampleReadError as error:
            report(f"record {record}: skipped: {error}")
            skipped.append(SkippedRecord(record, redact_paths(str(error))))
            continue
        key = sample_key(record)
        sequence.add(key, encode_sample(sample, record, original_image_file(sample, reads, key)))
        kept.append((record, patient_ids[record], dataset.labels_of(record)))
    sequence.close()
    if not kept:
        raise DatasetError(f"none of the {len(records)} records could be read; nothing was written")
    names = ordered_label_names([labels for _, _, labels in kept])
    index = ShardIndex({**source, "records": len(records)}, sequence.shards, [r for r, _, _ in kept],
                       [p for _, p, _ in kept], names, [label_code(labels, names) for _, _, labels in kept], skipped)
    temporary = out / f".{INDEX_NAME}.tmp-{os.getpid()}"
    temporary.write_text(index.to_json(), encoding="utf-8")
    os.replace(temporary, index_path)
    _remove_stale_shards(out, {s.name for s in index.shards})
    return index


def _remove_stale_shards(out: Path, current: set[str]) -> None:
    """Shards of an earlier, larger set in the same folder would otherwise linger next to the index."""
    for path in out.glob("shard-*.tar"):
        if path.name not in current:
            path.unlink()


def _progress(records: list[int], show: bool):
    if not show:
        return records
    from tqdm.auto import tqdm

    return tqdm(records, desc="make-shards", unit="record")
