"""Everything a batch does to one file before the model sees it, in one function that a DataLoader
worker can run: read and decode it, letterbox it to the model's input, compute the input gate's
image statistics, read its report, and make its thumbnail.

The Batch page and ``python -m lrclr predict FILE`` call ``prepare_input`` in their own process;
scoring an archive into a folder (:mod:`lrclr.batch.distributed_run`) calls it in DataLoader
workers, so files decode in parallel. Both then hand the same ``PreparedBatch`` to
``lrclr.batch.scoring.score_batch``, so every path scores the same tensors: the letterbox is always
computed on the CPU in float32 (the model's own ``prepare_images`` on the CPU), whatever device the
model runs on, and only the small (S x S) inputs travel to a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lrclr.batch.sources import BatchInput
from lrclr.display import operations as display
from lrclr.display.encoding import data_uri
from lrclr.errors import ImageReadError
from lrclr.imaging.input_check import image_reasons, orientation_features
from lrclr.imaging.reading import LoadedImage
from lrclr.model.letterbox import Letterbox, as_pixels, letterbox_pixels
from lrclr.reports.text import ReportTooLongError

THUMBNAIL_PX = 64


@dataclass
class PreparedInput:
    """One file, ready for the model, or the reason it cannot be scored."""

    index: int  # position in the source's inputs
    input: BatchInput
    error: str = ""  # why the file cannot be scored ("" when it can)
    pixels: torch.Tensor | None = None  # (1, S, S) letterboxed; None on error and once collated
    letterbox: Letterbox | None = None
    image_reasons: tuple[str, ...] = ()  # the input gate's image-level reasons (lrclr.imaging.input_check)
    orientation_features: np.ndarray | None = None  # what the gate's orientation check reads
    report_labels: dict[str, int] = field(default_factory=dict)
    report_note: str = ""  # why the report was not read
    thumbnail: str = ""


@dataclass
class PreparedBatch:
    """A batch's prepared files in input order, the readable ones' pixels stacked (B, 1, S, S).

    One stacked tensor per batch is what a DataLoader worker hands back through shared memory (one
    file descriptor, not one per image), and what ``pin_memory`` pins for a non-blocking copy.
    """

    items: list[PreparedInput]
    pixels: torch.Tensor | None  # None when no file of the batch is readable

    def pin_memory(self) -> "PreparedBatch":
        return PreparedBatch(self.items, None if self.pixels is None else self.pixels.pin_memory())

    @property
    def readable(self) -> list[PreparedInput]:
        return [item for item in self.items if not item.error]


def prepare_input(source, item: BatchInput, index: int, model_size: int, findings: Sequence[str],
                  thumbnail_px: int = 0) -> PreparedInput:
    """Read, decode and letterbox one file; per-file problems become the result's ``error``."""
    image, error = load_input(source, item)
    if image is None:  # load_input names the reason with every missing image
        return PreparedInput(index, item, error)
    try:
        pixels, letterbox = letterbox_pixels(as_pixels(image), model_size)
    except ValueError as problem:  # an image the model cannot take (no pixels)
        return PreparedInput(index, item, f"{item.name}: {model_failure(problem)}")
    labels, note = report_labels(source, item, findings)
    return PreparedInput(
        index, item, pixels=pixels, letterbox=letterbox,
        image_reasons=tuple(image_reasons(image.pixels, image.header, image.colourfulness)),
        orientation_features=orientation_features(image.pixels),
        report_labels=labels, report_note=note,
        thumbnail=thumbnail_data_uri(image.pixels, thumbnail_px) if thumbnail_px else "",
    )


def collate(items: Sequence[PreparedInput]) -> PreparedBatch:
    """The DataLoader's ``collate_fn`` (and the in-process path's): stack the readable pixels."""
    tensors = [item.pixels for item in items if not item.error and item.pixels is not None]
    return PreparedBatch([replace(item, pixels=None) for item in items], torch.stack(tensors) if tensors else None)


class PreparedInputs(torch.utils.data.Dataset):
    """A source's inputs as a map-style dataset of ``PreparedInput`` (for a DataLoader)."""

    def __init__(self, source, model_size: int, findings: Sequence[str]):
        self.source, self.model_size, self.findings = source, model_size, tuple(findings)

    def __len__(self) -> int:
        return len(self.source.inputs)

    def __getitem__(self, index: int) -> PreparedInput:
        return prepare_input(self.source, self.source.inputs[index], index, self.model_size, self.findings)


def model_failure(error: Exception) -> str:
    return f"the model could not score this image ({str(error).splitlines()[0][:120]})"


def load_input(source, item: BatchInput) -> tuple[LoadedImage | None, str]:
    if item.refused:
        return None, item.refused
    try:
        return source.load(item), ""
    except ImageReadError as error:
        return None, str(error)
    except OSError as error:  # unreadable path: permissions, vanished file
        return None, f"{item.name}: cannot read the file ({error.strerror or error})"


def report_labels(source, item: BatchInput, findings: Sequence[str]) -> tuple[dict[str, int], str]:
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
