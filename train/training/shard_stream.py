"""Training from shards: each reader streams its own shards through a shuffle buffer, exactly resumably.

Readers are (rank, loader worker) pairs: ``world_size x max(1, num_workers)`` of them. Each epoch:

1. The shards are ordered from (seed, epoch): a seeded permutation (``shard_sampling:
   "permutation"``, the default: every training sample once per epoch), as many draws with
   replacement as there are shards (``"replacement"``, open_clip's ``--dataset-resampled``: some
   shards twice, some not at all), or the index order (``"sequential"``).
2. They are dealt in that order, each to the reader holding the fewest training samples so far
   (ties: the lowest reader), so readers' loads differ by at most about one shard.
3. A reader reads its shards front to back and passes the training samples (a shard set of the
   whole dataset also holds validation and test samples; they are skipped unread) through a
   shuffle buffer of ``shuffle_buffer`` samples seeded from (seed, epoch, reader).
4. Every reader yields the same number of full batches: the fewest any reader can fill. Equal
   sizes are what the cross-rank feature gather needs; a reader's few samples beyond that are
   left out of this epoch (counted in ``EpochPlan.dropped``). A rank's batches alternate between
   its workers' readers, which is the order a DataLoader returns them in.

The order of every sample follows from the index and (seed, epoch, reader) alone, before a byte
is read, so the trainer's existing data position (epoch, batches used) is the whole resume state:
a resumed reader reads only the shards that still hold samples it has to yield, and keeps only
those. Memory: about ``shuffle_buffer`` samples' bytes per reader. Resuming exactly needs the same
world size and ``num_workers`` as the run that stopped (both set how the shards are dealt).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from train.datasets.base import SampleReadError
from train.datasets.shards import ShardDataset, shard_backing

log = logging.getLogger(__name__)

Item = tuple[int, int]  # (position of its shard in the reader's list, training-view index)


@dataclass(frozen=True)
class ReaderPlan:
    shards: list[int]  # shard numbers, in reading order
    order: list[Item]  # every training sample in those shards, in the order the shuffle buffer gives


@dataclass(frozen=True)
class EpochPlan:
    readers: dict[int, ReaderPlan]  # reader number -> its plan; rank r's are r * workers ... (r + 1) * workers - 1
    batches_per_reader: int
    dropped: int  # training samples in this epoch's shards that no batch uses


def epoch_shard_order(n_shards: int, sampling: str, seed: int, epoch: int) -> list[int]:
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), 0x5EED])
    if sampling == "sequential":
        return list(range(n_shards))
    if sampling == "permutation":
        return rng.permutation(n_shards).tolist()
    if sampling == "replacement":
        return rng.integers(0, n_shards, size=n_shards).tolist()
    raise ValueError(f"unknown shard sampling {sampling!r}")


def deal(order: list[int], counts: list[int], readers: int) -> list[list[int]]:
    """Each shard, in ``order``, to the reader with the fewest samples so far (ties: lowest reader)."""
    loads, dealt = [0] * readers, [[] for _ in range(readers)]
    for shard in order:
        if counts[shard] == 0:
            continue  # nothing of the training view in it (e.g. a validation patient's shard)
        reader = min(range(readers), key=lambda r: (loads[r], r))
        dealt[reader].append(shard)
        loads[reader] += counts[shard]
    return dealt


def shuffle_buffer(items: list[Item], size: int, rng: np.random.Generator) -> list[Item]:
    """The order a buffer of ``size`` gives: once full, each new item replaces a random one, which
    is emitted; the rest leave in random order at the end. ``size`` <= 1 keeps the order."""
    if size <= 1 or not items:
        return list(items)
    draws = rng.integers(0, size, size=max(0, len(items) - size))
    buffer, out = list(items[:size]), []
    for item, slot in zip(items[size:], draws):
        out.append(buffer[slot])
        buffer[slot] = item
    out.extend(buffer[i] for i in rng.permutation(len(buffer)))
    return out


@dataclass(frozen=True)
class StreamLayout:
    seed: int
    batch_size: int
    rank: int = 0
    world_size: int = 1
    num_workers: int = 0  # the DataLoader's worker processes (0: read in the training process)

    @property
    def workers(self) -> int:
        """Readers per rank: one per worker process, or one in the training process."""
        return max(1, self.num_workers)

    @property
    def readers(self) -> int:
        return self.world_size * self.workers

    def own_readers(self) -> range:
        return range(self.rank * self.workers, (self.rank + 1) * self.workers)


class ShardTraining:
    """The training view's shards and how to stream them; ``of`` returns None for other views."""

    def __init__(self, view, dataset: ShardDataset, positions: list[int], layout: StreamLayout) -> None:
        self.view, self.dataset, self.positions, self.layout = view, dataset, positions, layout
        by_shard: dict[int, list[int]] = defaultdict(list)
        for local, parent in sorted(enumerate(positions), key=lambda pair: pair[1]):
            by_shard[dataset.index.shard_of(parent)].append(local)  # in tar order
        self.members = [by_shard.get(s, []) for s in range(len(dataset.index.shards))]

    @classmethod
    def of(cls, view, layout: StreamLayout) -> "ShardTraining | None":
        backing = shard_backing(view)
        return None if backing is None else cls(view, backing[0], backing[1], layout)

    def plan(self, epoch: int, readers: range | None = None) -> EpochPlan:
        """The epoch's plan; sample orders only for ``readers`` (default all), since the batch count
        needs every reader's load but a rank reads only its own readers' samples."""
        layout, dataset = self.layout, self.dataset
        order = epoch_shard_order(len(self.members), dataset.shard_sampling, layout.seed, epoch)
        dealt = deal(order, [len(m) for m in self.members], layout.readers)
        loads = [sum(len(self.members[shard]) for shard in shards) for shards in dealt]
        batches = min(loads) // layout.batch_size
        if batches == 0:
            raise ValueError(
                f"epoch {epoch}: the {len(self.members)} shards give {layout.readers} readers (ranks x workers) "
                f"{sorted(loads)} training samples, and every reader needs at least one batch of "
                f"{layout.batch_size}: make more, smaller shards (--samples-per-shard) or use fewer workers")
        plans = {}
        for number in readers if readers is not None else range(layout.readers):
            items = [(position, local) for position, shard in enumerate(dealt[number])
                     for local in self.members[shard]]
            rng = np.random.default_rng([int(layout.seed) & 0xFFFFFFFF, int(epoch), number, 0xB0FF])
            plans[number] = ReaderPlan(dealt[number], shuffle_buffer(items, dataset.shuffle_buffer, rng))
        return EpochPlan(plans, batches, sum(loads) - batches * layout.batch_size * layout.readers)

    def loader(self, epoch: int, start: int, collate: Callable) -> DataLoader:
        """This rank's batches of ``epoch`` from batch ``start`` on, in the trainer's order."""
        plan = self.plan(epoch, self.layout.own_readers())
        if self.layout.rank == 0 and start == 0 and plan.dropped:
            log.info("epoch %d: %d training samples left out to give every reader %d full batches",
                     epoch, plan.dropped, plan.batches_per_reader)
        stream = RankStream(self, plan, start, collate)
        # A private generator, as for map-style loaders: making a loader must not draw from the global RNG.
        return DataLoader(stream, batch_size=None, num_workers=self.layout.num_workers, collate_fn=_as_is,
                          generator=torch.Generator().manual_seed(self.layout.seed))


def _as_is(batch):
    return batch


class RankStream(IterableDataset):
    """One rank's batches; in a DataLoader each worker serves one of the rank's readers.

    The loader takes batches from its workers in turn, starting with worker 0, so worker ``w``
    serves the reader whose turn comes ``w``-th from ``start``: the batches come out in rank order.
    """

    def __init__(self, training: ShardTraining, plan: EpochPlan, start: int, collate: Callable) -> None:
        self.training, self.plan, self.start, self.collate = training, plan, int(start), collate

    def __iter__(self) -> Iterator:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        layout = self.training.layout
        local = (self.start + worker) % layout.workers
        reader = self.plan.readers[layout.rank * layout.workers + local]
        first = max(0, -(-(self.start - local) // layout.workers))  # its first batch at or after start
        size = layout.batch_size
        samples = self._samples(reader, reader.order[first * size: self.plan.batches_per_reader * size])
        batch = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == size:
                yield self.collate(batch)
                batch = []

    def _samples(self, reader: ReaderPlan, wanted: list[Item]) -> Iterator:
        """The wanted items' samples in order, reading the reader's shards front to back once."""
        training = self.training
        held: dict[Item, dict[str, bytes]] = {}
        arriving = self._read(reader, wanted)
        for item in wanted:
            while item not in held:
                try:
                    key, members = next(arriving)
                except StopIteration:
                    raise SampleReadError(f"the shards ended before sample {item} arrived") from None
                held[key] = members
            parent = training.positions[item[1]]
            with training.dataset.provided(parent, held.pop(item)):
                yield training.view[item[1]]

    def _read(self, reader: ReaderPlan, wanted: list[Item]) -> Iterator[tuple[Item, dict[str, bytes]]]:
        training = self.training
        needed: dict[int, dict[str, int]] = defaultdict(dict)  # shard position -> key -> view index
        for position, local in wanted:
            needed[position][training.dataset.key_of(training.positions[local])] = local
        for position in sorted(needed):  # shards that hold nothing still to yield are not opened
            keys = needed[position]
            for key, members in training.dataset.stream_shard(reader.shards[position], set(keys)):
                yield (position, keys[key]), members
