"""``{"kind": "shards", "index": "DIR/index.json"}``: a dataset read from ``make-shards`` output.

It is a dataset like the others: ``patient_ids()`` and ``labels_of(i)`` come from the index, so the
commands split it patient-disjointly, fold it for cross-validation and evaluate it as they do any
dataset; ``dataset[i]`` reads one sample by seeking into its shard (member offsets are scanned from
the tar headers on first use). That random access serves evaluation, validation and the
frozen-tower cache, which read in index order, i.e. shard after shard.

Training reads it differently: ``train.training.shard_stream`` streams each rank's own shards front
to back through a shuffle buffer, the access pattern network file systems are fast at. This class
only holds the options of that stream (``shuffle_buffer``, ``shard_sampling``), and hands the
streamed bytes to ``__getitem__`` (``provided``) so both paths decode, resize and augment a sample
in exactly the same code.

Read back as the source was read: the source spec's ``max_side`` and ``seed`` (the augmentation
seed) apply unless this spec sets its own; augmentation is never stored, so give ``"augment"`` here.
"""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from train.datasets.base import DatasetError, ImageReportDataset, SampleReadError
from train.datasets.held_out import HeldOutView
from train.datasets.sample import Sample
from train.datasets.shard_format import ShardIndex, decode_sample, sample_key
from train.datasets.splits import Subset

# How each epoch orders the shards before dealing them to the readers (train/training/shard_stream.py):
# a fresh seeded permutation (every sample once per epoch), draws with replacement (open_clip's
# --dataset-resampled), or the index order every epoch (no shard shuffling, for checks).
SHARD_SAMPLING = ("permutation", "replacement", "sequential")

MemberTable = dict[str, dict[str, tuple[int, int]]]  # key -> member extension -> (data offset, size)


class ShardDataset(ImageReportDataset):
    name = "shards"

    def __init__(self, index: str | Path, shuffle_buffer: int = 1000, shard_sampling: str = "permutation",
                 verify: bool = False, **options) -> None:
        index_path = Path(index)
        self.index = ShardIndex.load(index_path)
        source_spec = self.index.source.get("spec") or {}
        for key in ("max_side", "seed"):
            if key in source_spec:
                options.setdefault(key, source_spec[key])
        super().__init__(**options)
        if int(shuffle_buffer) < 0:
            raise DatasetError(f"shuffle_buffer must be >= 0 samples (0: no shuffling), got {shuffle_buffer}")
        if shard_sampling not in SHARD_SAMPLING:
            raise DatasetError(f"shard_sampling must be one of {SHARD_SAMPLING}, got {shard_sampling!r}")
        self.folder = index_path.parent
        self.shuffle_buffer, self.shard_sampling = int(shuffle_buffer), shard_sampling
        self.name = f"shards:{source_spec.get('kind', 'dataset')}"
        self._check_files(verify)
        self._tables: dict[int, MemberTable] = {}
        self._provided: dict[int, dict[str, bytes]] = {}

    def _check_files(self, verify: bool) -> None:
        for shard in self.index.shards:
            path = self.folder / shard.name
            if not path.is_file():
                raise DatasetError(f"shard {path} listed in the index is missing")
            if path.stat().st_size != shard.bytes:
                raise DatasetError(f"shard {path} has {path.stat().st_size} bytes, the index says {shard.bytes}: "
                                   "it was changed or only partly copied")
            if verify and _sha256(path) != shard.sha256:
                raise DatasetError(f"shard {path} does not match the SHA-256 in its index")

    # --- the dataset interface ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index.records)

    def patient_ids(self) -> list[str]:
        return list(self.index.patient_ids)

    def labels_of(self, index: int) -> dict[str, int]:
        return self.index.labels_of(self._check_index(index))

    def _load(self, index: int) -> Sample:
        shard = self.index.shard_of(index)
        members = self._provided.get(index)
        if members is None:
            members = self._read_members(shard, self.key_of(index))
        return decode_sample(members, f"{self.index.shards[shard].name}:{self.key_of(index)}")

    # --- what the training stream uses -------------------------------------------------------
    def key_of(self, index: int) -> str:
        return sample_key(self.index.records[index])

    def shard_path(self, shard: int) -> Path:
        return self.folder / self.index.shards[shard].name

    @contextlib.contextmanager
    def provided(self, index: int, members: dict[str, bytes]) -> Iterator[None]:
        """Inside the block, record ``index`` is decoded from ``members`` (bytes a stream has read)."""
        self._provided[index] = members
        try:
            yield
        finally:
            self._provided.pop(index, None)

    def stream_shard(self, shard: int, keys: set[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
        """(key, members) of the samples with these keys, reading the shard front to back once."""
        from webdataset.tariterators import group_by_keys, tar_file_iterator

        path = self.shard_path(shard)
        found = set()
        with open(path, "rb") as handle:
            files = tar_file_iterator(handle, select_files=lambda name: name.split(".", 1)[0] in keys)
            for sample in group_by_keys({**f, "__url__": str(path)} for f in files):
                key = sample.pop("__key__")
                found.add(key)
                yield key, {k: v for k, v in sample.items() if not k.startswith("__")}
        if found != keys:
            raise SampleReadError(f"shard {path} lacks {len(keys - found)} sample(s) its index lists, e.g. "
                                  f"{sorted(keys - found)[:3]}; make the shards again")

    # --- random access -------------------------------------------------------------------------
    def _read_members(self, shard: int, key: str) -> dict[str, bytes]:
        table = self._tables.get(shard)
        if table is None:
            table = self._tables[shard] = _member_table(self.shard_path(shard))
        if key not in table:
            raise SampleReadError(f"shard {self.shard_path(shard)} has no sample {key}; make the shards again")
        members = {}
        with open(self.shard_path(shard), "rb") as handle:
            for extension, (offset, size) in table[key].items():
                handle.seek(offset)
                members[extension] = handle.read(size)
        return members


def _member_table(path: Path) -> MemberTable:
    table: MemberTable = defaultdict(dict)
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if member.isreg():
                    key, _, extension = member.name.partition(".")
                    table[key][extension] = (member.offset_data, member.size)
    except tarfile.TarError as error:
        raise SampleReadError(f"shard {path} is not a readable tar file: {error}") from error
    return dict(table)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_backing(view) -> tuple[ShardDataset, list[int]] | None:
    """The shard set behind a training view and, per item of the view, its index in that set; None
    when the view is anything else (e.g. a mix with other datasets: read by random access then).

    Looked through: held-out views (they keep their items' positions), ``Subset``s and index views
    with ``base`` and ``indices`` whose item i is ``base[indices[i]]`` (cross-validation's folds).
    """
    positions: list[int] | None = None
    while True:
        if isinstance(view, HeldOutView):
            view = view.dataset
            continue
        inner = view.dataset if isinstance(view, Subset) else getattr(view, "base", None)
        if inner is None or not hasattr(view, "indices"):
            break
        positions = list(view.indices) if positions is None else [view.indices[i] for i in positions]
        view = inner
    if not isinstance(view, ShardDataset):
        return None
    return view, list(range(len(view))) if positions is None else positions
