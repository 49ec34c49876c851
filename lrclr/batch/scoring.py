"""Streaming batch scoring: the engine behind ``python -m lrclr predict`` and the app's Batch page.

Inputs come from a source (:mod:`lrclr.batch.sources`: files and folders, or one ZIP archive). They
are scored ``batch_size`` files at a time, each chunk's images
as one model batch on the model's device, so a GPU is used with batching when present. Every input
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

import numpy as np
from PIL import Image

from lrclr.errors import ImageReadError
from lrclr.imaging.reading import LoadedImage
from lrclr.imaging.input_check import InputReference, check_input
from lrclr.reports.text import ReportTooLongError

from lrclr.batch.sources import BatchInput
from lrclr.display import operations as display
from lrclr.display.encoding import data_uri

THUMBNAIL_PX = 64


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
    loaded = [_load(source, item) for item in chunk]
    scores = iter(_score_images(model, [image for image, _ in loaded if image is not None], findings))
    reference = InputReference.from_card(model.model_card)
    results = []
    for item, (image, error) in zip(chunk, loaded):
        scored = next(scores) if image is not None else None
        if isinstance(scored, str):
            error = f"{item.name}: {scored}"
        if error:
            results.append(BatchResult(item, PredictionRow(item.name, error=error)))
            continue
        # _load gives a reason with every None image, and a str score has set error above
        assert image is not None and isinstance(scored, tuple)
        probabilities, embedding = scored
        gate = check_input(reference, image.pixels, embedding, image.header, image.colourfulness)
        report_labels, report_note = _report_labels(source, item, findings)
        row = PredictionRow(item.name, dict(zip(findings, probabilities)), report_labels,
                            input_check="; ".join(gate.reasons), report_note=report_note)
        results.append(BatchResult(item, row, thumbnail_data_uri(image.pixels, thumbnail_px) if thumbnail_px else ""))
    return results


def _load(source, item: BatchInput) -> tuple[LoadedImage | None, str]:
    if item.refused:
        return None, item.refused
    try:
        return source.load(item), ""
    except ImageReadError as error:
        return None, str(error)
    except OSError as error:  # unreadable path: permissions, vanished file
        return None, f"{item.name}: cannot read the file ({error.strerror or error})"


def _score_images(model, images: list[LoadedImage], findings: Sequence[str]) -> list[tuple | str]:
    """(probabilities, global embedding) per image; if the batch fails (e.g. out of GPU memory),
    each image alone, so that only an image the model cannot take gets an error."""
    if not images:
        return []
    try:
        scores = model.zero_shot(images, findings)
        return [([float(p) for p in row], embedding)
                for row, embedding in zip(scores.probabilities, scores.image_embeddings)]
    except (RuntimeError, ValueError) as error:
        if len(images) == 1:
            return [f"the model could not score this image ({str(error).splitlines()[0][:120]})"]
        return [result for image in images for result in _score_images(model, [image], findings)]


def _report_labels(source, item: BatchInput, findings: Sequence[str]) -> tuple[dict[str, int], str]:
    """The labeler's status per finding for the item's report, and why the report was not read."""
    try:
        report = source.report(item)
    except ReportTooLongError as error:
        return {}, str(error)
    except OSError:
        report = None
    if report is None:
        return {}, ""
    from lrclr.reports.labeler import label_report

    labels = label_report(report).labels
    return {f: labels[f] for f in findings if f in labels}, ""


def thumbnail_data_uri(pixels: np.ndarray, max_side: int = THUMBNAIL_PX) -> str:
    """A small JPEG of a [0, 1] grayscale image as a data URI (for a results table)."""
    small = display.downsample(pixels, max_side)  # area resampling: a 64 px film without aliasing
    image = Image.fromarray(np.round(np.clip(small, 0, 1) * 255).astype(np.uint8), mode="L")
    return data_uri(image, jpeg_quality=80)


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

