"""Scoring an archive into a run folder, in one process or in many under ``torchrun``.

    torchrun --standalone --nproc_per_node 8 -m lrclr predict /data/studies.zip --out runs/nih/

Every rank lists the same inputs (checked), rank 0 creates or checks the run folder
(:mod:`lrclr.batch.run_folder`) and tells every rank which chunks are still missing, and each
rank scores its round-robin share of them: a PyTorch DataLoader whose workers read, decode and
letterbox the files in parallel (:mod:`lrclr.batch.preparing`), batches that never span two
chunks, and one part file per chunk. After a barrier rank 0 merges the parts.

The ranks exchange only small control messages (the input fingerprint, the missing chunks, the
barrier), so the process group is gloo on every device: no NCCL communicator is bound to a GPU
for them, and the same code runs on CPU nodes.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.distributed as dist

from lrclr.batch.preparing import PreparedInputs, collate
from lrclr.batch.run_folder import (DEFAULT_CHUNK_SIZE, MergeResult, RunFolder, RunFolderError, RunPlan, Session,
                                    assign_chunks, inputs_fingerprint, model_fingerprint, now)
from lrclr.batch.scoring import batch_results, default_batch_size, model_scores
from lrclr.batch.sources import open_source
from lrclr.errors import LRCLRError
from lrclr.imaging.input_check import InputReference
from lrclr.ranks import Ranks

# A rank that finishes its share waits at the final barrier for the slowest one; over 10^6 files
# on CPUs that can be many hours, so the default 30 minutes would abort a healthy run. A rank that
# dies is not waited for: torchrun stops the others.
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class ArchiveOptions:
    paths: tuple[str, ...]
    out: Path
    model: Path
    findings: tuple[str, ...]
    reports: Path | None = None
    device: str = "auto"
    precision: str = "float32"
    batch_size: int | None = None  # None: the run's own on a resume, else default_batch_size
    chunk_size: int | None = None  # None: the run's own on a resume, else DEFAULT_CHUNK_SIZE
    workers: int | None = None  # DataLoader workers per rank; None: default_workers
    threads: int | None = None  # torch threads per rank on a CPU; None: the node's cores / its ranks
    parquet: bool | None = None  # None: the run's own on a resume, else no Parquet


@dataclass(frozen=True)
class ArchiveResult:
    chunks: int
    chunks_done_before: int
    chunks_scored_here: int  # by this rank
    merged: MergeResult | None  # rank 0 only


def node_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(device_type: str, ranks: Ranks) -> int:
    """On a CPU the model's forward pass dominates and shares the cores: one worker overlaps the
    decoding with it. A GPU must be fed: all of the rank's share of the cores but one decode
    (BENCHMARKS.md: on a GPU, decoding and letterboxing on the CPU set the pace)."""
    share = max(1, node_cores() // ranks.local_world_size)
    return 1 if device_type == "cpu" else max(1, share - 1)


def score_archive(options: ArchiveOptions, log: Callable[[str], None] | None = None) -> ArchiveResult:
    """Score ``options.paths`` into the run folder ``options.out``; resumable, and rank-aware."""
    ranks = Ranks.from_environment()
    log = log or (lambda text: print(f"rank {ranks.rank}: {text}" if ranks.enabled else text, file=sys.stderr))
    if ranks.enabled and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        return _score(options, ranks, log)
    finally:
        if ranks.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _score(options: ArchiveOptions, ranks: Ranks, log) -> ArchiveResult:
    from lrclr.model.lrclr_model import LRCLRModel

    folder = RunFolder(options.out)
    source = open_source(options.paths, options.reports)
    try:
        if not source.inputs:
            raise LRCLRError(f"no image files found in {' '.join(options.paths)}")
        device = _rank_device(options.device, ranks)
        if torch.device(device).type == "cpu":
            # torchrun sets OMP_NUM_THREADS=1 for every rank, which leaves most of a CPU node idle;
            # the node's cores shared out between its ranks use it without oversubscribing it.
            torch.set_num_threads(options.threads or max(1, node_cores() // ranks.local_world_size))
        model = LRCLRModel.from_pretrained(options.model, device=device, precision=options.precision)
        plan = _plan(options, folder, source, model)
        mine, done = _agree_on_work(folder, plan, ranks, model.device_info.name, log)
        workers = options.workers if options.workers is not None else default_workers(model.device_info.device.type, ranks)
        log(f"model {model.model_id} on {model.device_info.name}; {plan.inputs} files in {plan.chunks} chunks of "
            f"{plan.chunk_size}, {done} done before; this process scores {len(mine)}, {plan.batch_size} per batch, "
            f"{workers} loader workers")
        score_chunks(model, source, plan, mine, folder, workers, log)
    finally:
        source.close()
    if ranks.enabled:
        dist.barrier()
    merged = folder.merge(plan) if ranks.is_main else None
    return ArchiveResult(plan.chunks, done, len(mine), merged)


def _rank_device(device: str, ranks: Ranks) -> str:
    """The device this rank runs on, resolved as ``pick_device`` resolves "auto"; under torchrun
    each rank of a node takes its own GPU (``cuda`` means ``cuda:LOCAL_RANK``)."""
    device = device.lower()
    if device in ("auto", "cuda") and torch.cuda.is_available():
        if ranks.local_rank >= torch.cuda.device_count():
            raise LRCLRError(f"local rank {ranks.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                             "start at most that many processes per node (--nproc_per_node)")
        torch.cuda.set_device(ranks.local_rank)
        return f"cuda:{ranks.local_rank}"
    if device == "auto":
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return device


def _plan(options: ArchiveOptions, folder: RunFolder, source, model) -> RunPlan:
    """The run's plan; batch and chunk sizes not given are the run's own when it is resumed."""
    manifest = folder.read_manifest()
    previous = RunPlan.from_dict(manifest["plan"]) if manifest else None
    batch_size = options.batch_size or (previous.batch_size if previous else default_batch_size(model))
    chunk_size = options.chunk_size or (previous.chunk_size if previous
                                        else batch_size * max(1, round(DEFAULT_CHUNK_SIZE / batch_size)))
    if batch_size < 1 or chunk_size < 1 or chunk_size % batch_size:
        raise LRCLRError(f"--chunk-size ({chunk_size}) must be a positive multiple of --batch-size ({batch_size}), "
                         "so that a part's batches are those of a run into one CSV file")
    parquet = options.parquet if options.parquet is not None else bool(previous and previous.parquet)
    return RunPlan(len(source.inputs), inputs_fingerprint(source.inputs), source.with_reports, model.model_id,
                   model_fingerprint(options.model), tuple(options.findings), chunk_size, batch_size,
                   options.precision, parquet)


def _agree_on_work(folder: RunFolder, plan: RunPlan, ranks: Ranks, device: str, log) -> tuple[list[int], int]:
    """Check that every rank sees the same run; rank 0 opens the folder and names the missing
    chunks. Returns this rank's chunks and how many were done before. Every rank raises the same
    error, so none is left waiting at a barrier."""
    if ranks.enabled:
        plans: list = [None] * ranks.world_size
        dist.all_gather_object(plans, plan)
        if any(other != plan for other in plans):
            raise LRCLRError("the processes of this run see different inputs, model or options (a folder still "
                             "being written, or paths that differ between nodes); every node must see the same files")
    message: list = [None, []]
    if ranks.is_main:
        try:
            missing = folder.missing_chunks(plan) if folder.manifest_path.is_file() else list(range(plan.chunks))
            session = Session(now(), ranks.world_size, device, plan.chunks - len(missing), len(missing))
            for note in folder.start(plan, session):
                log(f"note: {note}")
            message = [None, missing]
        except (RunFolderError, OSError) as problem:
            message = [str(problem), []]
    if ranks.enabled:
        dist.broadcast_object_list(message, src=0)
    error, missing = message
    if error:
        raise RunFolderError(error)
    return assign_chunks(missing, ranks.rank, ranks.world_size), plan.chunks - len(missing)


def score_chunks(model, source, plan: RunPlan, chunks: Sequence[int], folder: RunFolder, workers: int, log) -> None:
    """Score ``chunks`` into their parts. The model runs in this thread; a second thread turns each
    batch's scores into rows and writes the parts, so that this Python work (a tenth of a
    millisecond per file, a GPU's whole budget at thousands of files a second) overlaps the next
    batch on the GPU, whose waits release the GIL. At most one batch waits for the writer."""
    if not chunks:
        return
    loader = torch.utils.data.DataLoader(
        PreparedInputs(source, model.config.image_size, plan.findings), batch_sampler=plan.batches(chunks),
        collate_fn=collate, num_workers=workers, pin_memory=model.device_info.device.type == "cuda")
    parts = PartWriter(folder, plan, InputReference.from_card(model.model_card), log)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lrclr-parts") as writer:
        pending = None
        for batch in loader:
            scores = model_scores(model, batch, plan.findings)
            if pending is not None:
                pending.result()  # raises the writer's error, if any
            pending = writer.submit(parts.add, batch, scores)
        if pending is not None:
            pending.result()


class PartWriter:
    """Collects a chunk's rows batch by batch and writes its part once the chunk is complete."""

    def __init__(self, folder: RunFolder, plan: RunPlan, reference, log):
        self.folder, self.plan, self.reference, self.log = folder, plan, reference, log
        self.rows: list = []
        self.started, self.files = time.monotonic(), 0

    def add(self, batch, scores) -> None:
        chunk = batch.items[0].index // self.plan.chunk_size
        self.rows += [r.row for r in batch_results(batch, self.plan.findings, scores, self.reference)]
        if len(self.rows) == len(self.plan.chunk_range(chunk)):
            self.folder.write_part(self.plan, chunk, self.rows)
            self.files += len(self.rows)
            failed = sum(bool(row.error) for row in self.rows)
            rate = self.files / max(time.monotonic() - self.started, 1e-9)
            self.log(f"chunk {chunk + 1} of {self.plan.chunks} written ({len(self.rows)} files, {failed} failed; "
                     f"{rate:.1f} files/s in this process)")
            self.rows = []
