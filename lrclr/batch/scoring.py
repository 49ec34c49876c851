"""Streaming batch scoring: the engine behind ``python -m lrclr predict`` and the app's Batch page.

Inputs come from a source (:mod:`lrclr.batch.sources`: files and folders, or one ZIP archive). They
are scored ``batch_size`` files at a time, each chunk's images
as one model batch on the model's device, so a GPU is used with batching when present. What is done
to each file before the model (reading, decoding, letterboxing) is :mod:`lrclr.batch.preparing`,
shared with archive scoring, which runs it in DataLoader workers (:mod:`lrclr.batch.distributed_run`). Every input
gives exactly one result, its probabilities or the reason it could not be scored: a bad file never
stops a batch. Memory stays flat whatever the number of files, since only the current chunk's
images are held; callers keep what they need of each result (a CSV line, a table row).

A run (``BatchRun``) is stepped one chunk at a time, so a caller can stop it between chunks (the
page's Cancel button) and show progress with a time estimate from the running median per file.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from lrclr.batch.preparing import PreparedBatch, collate, model_failure, prepare_input
from lrclr.batch.sources import BatchInput
from lrclr.imaging.input_check import InputReference, embedding_reasons, orientation_reasons
from lrclr.model.letterbox import Letterbox


@dataclass(frozen=True)
class PredictionRow:
    image: str  # the file name
    probabilities: dict[str, float] = field(default_factory=dict)  # empty when the file failed
    report_labels: dict[str, int] = field(default_factory=dict)  # labeler status per finding, if a report was found
    error: str = ""
    # The input gate (lrclr.imaging.input_check): "" when it passes, else why it does not look like a chest film.
    input_check: str = ""
    report_note: str = ""  # why the image's report was not read ("" when it was, or there is none)


@dataclass(frozen=True)
class BatchResult:
    input: BatchInput
    row: PredictionRow
    thumbnail: str = ""  # a small JPEG data URI of the image, when asked for


# ---- scoring -------------------------------------------------------------------------------------


def default_batch_size(model) -> int:
    """Images per model batch: larger on an accelerator; small on a CPU so progress and Cancel stay responsive."""
    kind = model.device_info.device.type
    return 32 if kind == "cuda" else 16 if kind == "mps" else 8


def score_chunk(model, source, chunk: Sequence[BatchInput], findings: Sequence[str],
                thumbnail_px: int = 0) -> list[BatchResult]:
    """One result per input, in order; the readable images are scored as one model batch."""
    size = model.config.image_size
    prepared = [prepare_input(source, item, index, size, findings, thumbnail_px) for index, item in enumerate(chunk)]
    return score_batch(model, collate(prepared), findings)


def score_batch(model, batch: PreparedBatch, findings: Sequence[str]) -> list[BatchResult]:
    """Score a prepared batch (``lrclr.batch.preparing``): one result per file, in order."""
    return batch_results(batch, findings, model_scores(model, batch, findings),
                         InputReference.from_card(model.model_card))


def model_scores(model, batch: PreparedBatch, findings: Sequence[str]) -> list[tuple | str]:
    """The model's part of ``score_batch``: (probabilities, embedding) or a failure, per readable file."""
    readable = batch.readable
    letterboxes = [item.letterbox for item in readable if item.letterbox is not None]  # every readable file has one
    return _score_pixels(model, batch.pixels, letterboxes, findings) if readable else []


def batch_results(batch: PreparedBatch, findings: Sequence[str], scores: list[tuple | str],
                  reference: InputReference | None) -> list[BatchResult]:
    """The rest of ``score_batch``, without the model: the input gate and one result per file.
    Archive scoring runs it in a thread while the GPU scores the next batch."""
    remaining = iter(scores)
    results = []
    for item in batch.items:
        scored = next(remaining) if not item.error else None
        name = item.input.name
        error = item.error or (f"{name}: {scored}" if isinstance(scored, str) else "")
        if error:
            results.append(BatchResult(item.input, PredictionRow(name, error=error)))
            continue
        assert isinstance(scored, tuple)  # a str score has set error above
        probabilities, embedding = scored
        reasons = [*item.image_reasons, *embedding_reasons(reference, embedding),
                   *orientation_reasons(reference, item.orientation_features)]
        row = PredictionRow(name, dict(zip(findings, probabilities)), item.report_labels,
                            input_check="; ".join(reasons), report_note=item.report_note)
        results.append(BatchResult(item.input, row, item.thumbnail))
    return results


def _score_pixels(model, pixels, letterboxes: list[Letterbox], findings: Sequence[str]) -> list[tuple | str]:
    """(probabilities, global embedding) per image; if the batch fails (e.g. out of GPU memory),
    each image alone, so that only an image the model cannot take gets an error."""
    try:
        scores = model.zero_shot_letterboxed(pixels, letterboxes, findings)
        return [([float(p) for p in row], embedding)
                for row, embedding in zip(scores.probabilities, scores.image_embeddings)]
    except (RuntimeError, ValueError) as error:
        if len(letterboxes) == 1:
            return [model_failure(error)]
        return [result for i, letterbox in enumerate(letterboxes)
                for result in _score_pixels(model, pixels[i:i + 1], [letterbox], findings)]


# ---- a run ---------------------------------------------------------------------------------------


class EtaEstimator:
    """Seconds left, from the median per-file time of the recent chunks: robust to a slow first
    chunk (prompt encoding, warm-up) and to chunks of fast-failing files."""

    def __init__(self, window: int = 25):
        self._per_file: deque[float] = deque(maxlen=window)

    def add(self, seconds: float, files: int) -> None:
        if files > 0:
            self._per_file.append(seconds / files)

    def remaining(self, files_left: int) -> float | None:
        return statistics.median(self._per_file) * files_left if self._per_file else None


class BatchRun:
    """A batch in progress. ``step()`` scores the next chunk; iterating steps until done or cancelled.

    The CLI iterates it; the Batch page steps it once per rerun and calls ``cancel()`` on a click.
    """

    def __init__(self, model, source, findings: Sequence[str], batch_size: int | None = None,
                 thumbnail_px: int = 0):
        self.model, self.source, self.findings = model, source, tuple(findings)
        self.batch_size = max(1, batch_size or default_batch_size(model))
        self.thumbnail_px = thumbnail_px
        self.position = self.scored = self.failed = 0
        self.listing_text = ""
        self.cancelled = False
        self.seconds = 0.0
        self.eta = EtaEstimator()

    @property
    def total(self) -> int:
        return len(self.source.inputs)

    @property
    def listing(self) -> bool:
        """Whether the source is still finding its files (a folder walk, see ``FolderWalk``)."""
        return getattr(self.source, "listing", False)

    @property
    def finished(self) -> bool:
        return not self.listing and self.position >= self.total

    @property
    def active(self) -> bool:
        return not self.finished and not self.cancelled

    def cancel(self) -> None:
        self.cancelled = True

    def step(self) -> list[BatchResult]:
        if not self.active:
            return []
        if self.listing:
            self.listing_text = self.source.list_more()
            return []
        chunk = self.source.inputs[self.position:self.position + self.batch_size]
        start = time.perf_counter()
        results = score_chunk(self.model, self.source, chunk, self.findings, self.thumbnail_px)
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.eta.add(elapsed, len(chunk))
        self.position += len(chunk)
        failed = sum(bool(r.row.error) for r in results)
        self.failed += failed
        self.scored += len(results) - failed
        return results

    def __iter__(self) -> Iterator[list[BatchResult]]:
        while self.active:
            yield self.step()

    def remaining_seconds(self) -> float | None:
        return self.eta.remaining(self.total - self.position)

    def progress_text(self) -> str:
        """"n / total · ETA 1 min 05 s" (or "estimating" before the first chunk)."""
        if self.listing:
            return self.listing_text or "listing files…"
        left = self.remaining_seconds()
        eta = "done" if self.finished else "ETA estimating…" if left is None else f"ETA {format_duration(left)}"
        return f"{self.position} / {self.total} · {eta}"


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"

