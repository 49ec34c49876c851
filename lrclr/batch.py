"""Streaming batch scoring: the engine behind ``python -m lrclr predict`` and the app's Batch page.

Inputs come from files and folders (walked and sorted) or from one ZIP archive (members read one
at a time, never extracted). They are scored ``batch_size`` files at a time, each chunk's images
as one model batch on the model's device, so a GPU is used with batching when present. Every input
gives exactly one result, its probabilities or the reason it could not be scored: a bad file never
stops a batch. Memory stays flat whatever the number of files, since only the current chunk's
images are held; callers keep what they need of each result (a CSV line, a table row).

A run (``BatchRun``) is stepped one chunk at a time, so a caller can stop it between chunks (the
page's Cancel button) and show progress with a time estimate from the running median per file.
"""

from __future__ import annotations

import base64
import io
import os
import re
import statistics
import time
import zipfile
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator, Sequence

import numpy as np
from PIL import Image

from lrclr import display
from lrclr.errors import CorruptImageError, ImageReadError, ImageTooLargeError, LRCLRError
from lrclr.imaging import LoadedImage, load_image
from lrclr.input_check import InputReference, check_input
from lrclr.reports import MAX_REPORT_FILE_BYTES, ReportTooLongError, checked_report, decode_report, report_file_size_problem

# Extensions taken from folders and archives. DICOM files often have none, so extension-less files
# are tried too; anything else (notes, CSVs) is not an image and is left alone.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ""}
REPORT_SUFFIX = ".txt"
# A radiograph is tens of MB even as an uncompressed 16-bit DICOM at the pixel limit (60 MP): a
# bigger file or ZIP member is refused before it is read, so an archive that expands to gigabytes
# (a zip bomb) cannot exhaust memory.
DEFAULT_MAX_FILE_BYTES = 256 * 2**20
# A chunk holds its decoded images at once, so each is decoded at most this large (the model reads
# 448 px, the thumbnails 64 px): 8 MP keeps a 3000 x 2500 radiograph whole, and a chunk of eight
# 49-megapixel PNGs under 500 MB (BENCHMARKS.md). The CLI reads the same way: its CSV is the page's.
BATCH_DECODED_PIXELS = 8_000_000
THUMBNAIL_PX = 64
_READ_CHUNK = 2**20


class BatchInputError(LRCLRError):
    """A batch's input as a whole cannot be used (not a ZIP archive, no images in it)."""


@dataclass(frozen=True)
class BatchInput:
    name: str  # the file name: the CSV's ``image`` column
    path: str  # the path on disk, or the member's path inside the archive
    size: int  # bytes (as declared by the archive for members)
    refused: str = ""  # why the input is not read at all (an unsafe archive member); "" otherwise


@dataclass(frozen=True)
class PredictionRow:
    image: str  # the file name
    probabilities: dict[str, float] = field(default_factory=dict)  # empty when the file failed
    report_labels: dict[str, int] = field(default_factory=dict)  # labeler status per finding, if a report was found
    error: str = ""
    # The input gate (lrclr.input_check): "" when it passes, else why it does not look like a chest film.
    input_check: str = ""
    report_note: str = ""  # why the image's report was not read ("" when it was, or there is none)


@dataclass(frozen=True)
class BatchResult:
    input: BatchInput
    row: PredictionRow
    thumbnail: str = ""  # a small JPEG data URI of the image, when asked for


# ---- inputs --------------------------------------------------------------------------------------


def collect_image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files given directly are always tried; folders contribute their image-like files, sorted
    (hidden files and folders skipped, links to folders not followed: see ``FolderWalk``)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            walk = FolderWalk(path)
            while not walk.done:
                walk.step()
            files += walk.files
        else:
            files.append(path)
    return files


class FolderWalk:
    """A folder's image-like files, listed a slice of time at a time, so that the Batch page shows
    progress and can be cancelled while a large tree is listed.

    Hidden files and folders (``.git``, ``.cache``) are skipped and links to folders are not
    followed, so the walk stays inside its folder; ``allow`` can refuse any file found (the
    deployment's roots: a link to a file may point anywhere).
    """

    def __init__(self, root: Path, allow=lambda path: True):
        self._walk = os.walk(root)
        self._allow = allow
        self._found: list[Path] = []
        self.folders = 0
        self.done = False

    def step(self, seconds: float = 0.25) -> None:
        deadline = time.monotonic() + seconds
        for folder, subfolders, names in self._walk:
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            self.folders += 1
            self._found += [Path(folder) / n for n in names
                            if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES]
            if time.monotonic() > deadline:
                return
        self.done = True

    @property
    def found(self) -> int:
        return len(self._found)

    @property
    def files(self) -> list[Path]:
        """The files found, sorted (complete once ``done``)."""
        return sorted(f for f in self._found if f.is_file() and self._allow(f))


class FolderSource:
    """Files and folders on disk, taken as ``python -m lrclr predict PATH...`` takes them.

    Reports, when ``reports_dir`` is given, are ``reports_dir/<image stem>.txt``.
    """

    def __init__(self, files: Sequence[Path], reports_dir: str | Path | None = None,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, walk: FolderWalk | None = None,
                 allow=lambda path: True):
        self.inputs = tuple(BatchInput(p.name, str(p), _file_size(p)) for p in files)
        self.reports_dir = Path(reports_dir) if reports_dir is not None else None
        self.max_file_bytes = max_file_bytes
        self._walk = walk
        self._allow = allow  # checked for reports too: a report may be a link out of the allowed folders

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], reports_dir: str | Path | None = None) -> "FolderSource":
        return cls(collect_image_files(paths), reports_dir)

    @classmethod
    def walking(cls, folder: Path, reports_dir: str | Path | None = None, allow=lambda path: True) -> "FolderSource":
        """A source whose files are still being listed: ``BatchRun`` lists them step by step."""
        return cls([], reports_dir, walk=FolderWalk(folder, allow), allow=allow)

    @property
    def listing(self) -> bool:
        return self._walk is not None and not self._walk.done

    def list_more(self) -> str:
        """List for a moment; returns what has been found so far, for the progress line."""
        self._walk.step()
        if self._walk.done:
            self.inputs = tuple(BatchInput(p.name, str(p), _file_size(p)) for p in self._walk.files)
        return f"listing files: {self._walk.found} found in {self._walk.folders} folders"

    @property
    def with_reports(self) -> bool:
        return self.reports_dir is not None

    def load(self, item: BatchInput) -> LoadedImage:
        size = _file_size(Path(item.path))
        if size > self.max_file_bytes:
            raise ImageTooLargeError(f"{item.name}: the file is {_megabytes(size)}, more than the "
                                     f"{_megabytes(self.max_file_bytes)} allowed")
        return load_image(item.path, name=item.name, max_decoded_pixels=BATCH_DECODED_PIXELS)

    def read_bytes(self, item: BatchInput) -> bytes:
        return Path(item.path).read_bytes()

    def report(self, item: BatchInput) -> str | None:
        if self.reports_dir is None:
            return None
        path = self.reports_dir / f"{Path(item.path).stem}{REPORT_SUFFIX}"
        if not path.is_file() or not self._allow(path):
            return None
        too_big = report_file_size_problem(path.stat().st_size)
        if too_big:
            raise ReportTooLongError(too_big)
        return checked_report(decode_report(path.read_bytes()))

    def close(self) -> None:
        pass


class ZipSource:
    """The members of one ZIP archive, read one at a time (never extracted to memory or disk).

    Members with an absolute or ``..`` path, encrypted members and members declaring more than
    ``max_file_bytes`` are refused: each becomes an error row naming the reason. While a member is
    read, what it really expands to is checked against what it declares. Reports are same-named
    ``.txt`` members beside the image. Hidden files (``.name``, ``__MACOSX/``) are skipped.
    """

    def __init__(self, archive: str | Path | BinaryIO, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES):
        try:
            self._zip = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
            raise BatchInputError(f"this is not a readable ZIP archive ({error})") from error
        self.max_file_bytes = max_file_bytes
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._reports: dict[tuple[str, str], zipfile.ZipInfo] = {}
        inputs = []
        files = [info for info in self._zip.infolist() if not info.is_dir()]
        for info in sorted(files, key=lambda i: PurePosixPath(_posix(i.filename)).parts):
            item = self._classify(info)
            if item is not None:
                inputs.append(item)
                self._members[info.filename] = info
        self.inputs = tuple(inputs)

    def _classify(self, info: zipfile.ZipInfo) -> BatchInput | None:
        path = PurePosixPath(_posix(info.filename))
        item = BatchInput(path.name or info.filename, info.filename, info.file_size)
        refused = _refusal(info, path, self.max_file_bytes)
        if refused:
            return BatchInput(item.name, item.path, item.size, f"{info.filename}: refused: {refused}")
        if any(part.startswith(".") or part == "__MACOSX" for part in path.parts):
            return None
        if path.suffix.lower() == REPORT_SUFFIX:
            self._reports[(str(path.parent), path.stem)] = info
            return None
        return item if path.suffix.lower() in IMAGE_SUFFIXES else None

    @property
    def with_reports(self) -> bool:
        return bool(self._reports)

    def load(self, item: BatchInput) -> LoadedImage:
        return load_image(self.read_bytes(item), name=item.name, max_decoded_pixels=BATCH_DECODED_PIXELS)

    def read_bytes(self, item: BatchInput) -> bytes:
        return self._read(self._members[item.path], item.name, self.max_file_bytes)

    def report(self, item: BatchInput) -> str | None:
        path = PurePosixPath(_posix(item.path))
        info = self._reports.get((str(path.parent), path.stem))
        if info is None:
            return None
        too_big = report_file_size_problem(info.file_size)
        if too_big:
            raise ReportTooLongError(too_big)
        try:
            return checked_report(decode_report(self._read(info, path.name, MAX_REPORT_FILE_BYTES)))
        except ImageReadError:
            return None  # an unreadable report leaves the row without report columns

    def _read(self, info: zipfile.ZipInfo, name: str, limit: int) -> bytes:
        if info.file_size > limit:
            raise ImageTooLargeError(f"{name}: the archive member declares {_megabytes(info.file_size)}, "
                                     f"more than the {_megabytes(limit)} allowed")
        parts, total = [], 0
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(_READ_CHUNK):
                    total += len(chunk)
                    if total > limit:
                        break
                    parts.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, OSError) as error:
            # zipfile stops at the declared size and then fails the CRC (or runs out of data): what
            # the member expands to is not what it declares.
            raise CorruptImageError(f"{name}: the archive member is damaged or is not what the archive declares "
                                    f"({str(error)[:120]}): a damaged archive or a zip bomb") from error
        if total != info.file_size:
            raise CorruptImageError(f"{name}: the archive member declares {info.file_size} bytes but expands to "
                                    f"{'more than ' if total > limit else ''}{total}: a damaged archive or a zip bomb")
        return b"".join(parts)

    def close(self) -> None:
        self._zip.close()


def open_source(paths: Sequence[str | Path], reports_dir: str | Path | None = None) -> FolderSource | ZipSource:
    """What ``python -m lrclr predict`` reads: one ZIP archive, or files and folders."""
    archives = [Path(p) for p in paths if Path(p).suffix.lower() == ".zip" and Path(p).is_file()]
    if not archives:
        return FolderSource.from_paths(paths, reports_dir)
    if len(paths) > 1:
        raise BatchInputError("a ZIP archive must be the only PATH")
    if reports_dir is not None:
        raise BatchInputError("--reports does not apply to a ZIP archive: its reports are the .txt files inside it")
    return ZipSource(archives[0])


def _posix(name: str) -> str:
    return name.replace("\\", "/")


def _refusal(info: zipfile.ZipInfo, path: PurePosixPath, max_bytes: int) -> str:
    name = _posix(info.filename)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path (archives may only hold relative paths)"
    if ".." in path.parts:
        return "a path that climbs out of the archive (..)"
    if info.flag_bits & 0x1:
        return "the member is encrypted"
    if info.file_size > max_bytes:
        return f"the member declares {_megabytes(info.file_size)}, more than the {_megabytes(max_bytes)} allowed"
    return ""


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported when the file is read


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size} bytes"


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
    from lrclr.labeler import label_report

    labels = label_report(report).labels
    return {f: labels[f] for f in findings if f in labels}, ""


def thumbnail_data_uri(pixels: np.ndarray, max_side: int = THUMBNAIL_PX) -> str:
    """A small JPEG of a [0, 1] grayscale image as a data URI (for a results table)."""
    small = display.downsample(pixels, max_side)  # area resampling: a 64 px film without aliasing
    image = Image.fromarray(np.round(np.clip(small, 0, 1) * 255).astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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

