"""The one interface every dataset implements, and the pieces the readers share.

A dataset indexes its records when it is built (CSV rows, file names) but decodes an image only in
``__getitem__``, so building one over 377k MIMIC images costs seconds, not hours. ``patient_ids()``
and ``labels_of(i)`` read the index only, which is what patient-disjoint, stratified splitting needs.

Unreadable images: by default ``__getitem__`` raises :class:`SampleReadError` naming the file. With
``skip_unreadable=True`` it logs a warning once per file and returns the next readable record (in
index order, wrapping around) instead; a blank stand-in image is never substituted, because a black
image paired with a real report would teach the model something false.
"""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import logging
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch.utils.data
from PIL import Image

from lrclr.errors import LRCLRError
from lrclr.imaging.reading import load_image
from train.datasets.sample import Sample

log = logging.getLogger(__name__)

Transform = Callable[[Sample, np.random.Generator], Sample]


class DatasetError(LRCLRError, ValueError):
    """A dataset's files are missing or malformed (no CSV, a missing column, an unknown split)."""


class SampleReadError(DatasetError):
    """One record's image could not be read; the message names the file."""


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream for one item's transform: the same (seed, epoch, index) gives the same
    augmentation whatever worker or order loads it, so runs are reproducible."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


class ImageReportDataset(torch.utils.data.Dataset):
    """Base class: subclasses implement ``__len__``, ``_load(i)``, ``patient_ids()`` and
    ``labels_of(i)``; ``__getitem__`` adds downscaling, the transform and unreadable-file policy.

    ``set_epoch`` must be called in the process that loads items: with DataLoader workers, either
    recreate workers each epoch (``persistent_workers=False``, the default) or augmentations repeat.
    """

    name: str = "dataset"

    def __init__(self, *, transform: Transform | None = None, seed: int = 0,
                 max_side: int | None = None, skip_unreadable: bool = False) -> None:
        if max_side is not None and max_side < 8:
            raise ValueError(f"max_side must be at least 8 pixels (or None), got {max_side}")
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.max_side = max_side
        self.skip_unreadable = skip_unreadable
        self._unreadable: set[int] = set()

    # --- what subclasses provide -------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int) -> Sample:
        """The record at ``index`` as stored (full size, no transform)."""
        raise NotImplementedError

    def patient_ids(self) -> list[str]:
        raise NotImplementedError

    def labels_of(self, index: int) -> dict[str, int]:
        raise NotImplementedError

    # --- shared behaviour --------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, index: int) -> Sample:
        """The untransformed sample (downscaled to ``max_side``); honours ``skip_unreadable``."""
        index = self._check_index(index)
        if not self.skip_unreadable:
            return self._resized(self._load(index))
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if candidate in self._unreadable:
                continue
            try:
                return self._resized(self._load(candidate))
            except SampleReadError as error:
                self._unreadable.add(candidate)
                log.warning("%s: skipping unreadable record %d: %s", self.name, candidate, error)
        raise SampleReadError(f"{self.name}: no readable image in any of its {len(self)} records")

    def __getitem__(self, index: int) -> Sample:
        index = self._check_index(index)
        return apply_transform(self.transform, self.sample(index), self.seed, self.epoch, index)

    def _check_index(self, index: int) -> int:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"{self.name}: index {index} out of range for {size} records")
        return index % size

    def _resized(self, sample: Sample) -> Sample:
        return downscale_sample(sample, self.max_side) if self.max_side else sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, records={len(self)})"


def apply_transform(transform: Transform | None, sample: Sample, seed: int, epoch: int,
                    index: int) -> Sample:
    if transform is None:
        return sample
    return transform(sample, item_generator(seed, epoch, index))


# --- images -------------------------------------------------------------------------------------


# Set by ``recorded_image_reads``: every (path, pixels) that read_pixels decodes is appended to it.
_IMAGE_READS: contextvars.ContextVar[list[tuple[Path, np.ndarray]] | None] = contextvars.ContextVar(
    "image_reads", default=None)


def read_pixels(path: Path) -> np.ndarray:
    """Decode with lrclr.imaging.reading; any failure becomes a SampleReadError with the full path."""
    try:
        pixels = load_image(path).pixels
    except LRCLRError as error:
        raise SampleReadError(f"cannot read image {path}: {error}") from error
    reads = _IMAGE_READS.get()
    if reads is not None:
        reads.append((Path(path), pixels))
    return pixels


@contextlib.contextmanager
def recorded_image_reads() -> Iterator[list[tuple[Path, np.ndarray]]]:
    """The image files a dataset decodes inside the block, with what they decoded to.

    ``make-shards`` uses it to store a record's original file bytes (not a re-encoding) whenever
    the record's pixels are exactly that file's decode: every dataset kind reads its images through
    ``read_pixels``, so no reader needs its own "which file is record i" method.
    """
    reads: list[tuple[Path, np.ndarray]] = []
    token = _IMAGE_READS.set(reads)
    try:
        yield reads
    finally:
        _IMAGE_READS.reset(token)


def downscale_sample(sample: Sample, max_side: int) -> Sample:
    """Shrink so the longer side is at most ``max_side``; boxes and masks follow the pixels.

    Pixels use area averaging (Pillow's BOX filter on float data) so thin lines do not alias; masks
    are resized the same way and kept where at least half of the output pixel was covered.
    """
    height, width = sample.pixels.shape
    longest = max(height, width)
    if longest <= max_side:
        return sample
    new_w = max(1, round(width * max_side / longest))
    new_h = max(1, round(height * max_side / longest))
    sx, sy = new_w / width, new_h / height
    pixels = _resize_float(sample.pixels, new_w, new_h)
    masks = {name: _resize_float(mask.astype(np.float32), new_w, new_h) >= 0.5
             for name, mask in sample.masks.items()}
    boxes = {name: [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in found]
             for name, found in sample.boxes.items()}
    return Sample(sample.image_id, sample.patient_id, np.clip(pixels, 0.0, 1.0), sample.report,
                  dict(sample.labels), masks, boxes, sample.source)


def _resize_float(values: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BOX), dtype=np.float32)


# --- tables -------------------------------------------------------------------------------------


def find_file(folder: Path, names: Iterable[str], what: str) -> Path:
    """The first of ``names`` (e.g. "x.csv", "x.csv.gz") present in ``folder``."""
    names = list(names)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"no {what} in {folder} (looked for {', '.join(names)})")


def read_table(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    """A CSV (optionally .gz) as strings, with a clear error for a missing file or column."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            table = pd.read_csv(handle, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as error:
        raise DatasetError(f"{what} {path} could not be read as CSV: {error}") from error
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DatasetError(f"{what} {path} lacks column(s) {missing}; it has {list(table.columns)}")
    return table
