"""Where a batch's files come from: files and folders (walked and sorted, hidden files skipped, the
listing cancellable) or one ZIP archive (members read one at a time, never extracted, unsafe
members refused). A source yields ``BatchInput`` items and reads each one's image and report.
"""

from __future__ import annotations

import os
import re
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Sequence


from lrclr.errors import CorruptImageError, ImageReadError, ImageTooLargeError, LRCLRError
from lrclr.imaging.reading import LoadedImage, load_image
from lrclr.reports.text import MAX_REPORT_FILE_BYTES, ReportTooLongError, checked_report, decode_report, report_file_size_problem


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

_READ_CHUNK = 2**20


def allow_any(path: Path) -> bool:
    """The default ``allow``: a named function, not a lambda, so that a source pickles (DataLoader
    workers started by spawn, as on macOS, receive the source pickled)."""
    return True


class BatchInputError(LRCLRError):
    """A batch's input as a whole cannot be used (not a ZIP archive, no images in it)."""


@dataclass(frozen=True)
class BatchInput:
    name: str  # the file name: the CSV's ``image`` column
    path: str  # the path on disk, or the member's path inside the archive
    size: int  # bytes (as declared by the archive for members)
    refused: str = ""  # why the input is not read at all (an unsafe archive member); "" otherwise


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

    def __init__(self, root: Path, allow=allow_any):
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
                 allow=allow_any):
        self.inputs = tuple(BatchInput(p.name, str(p), _file_size(p)) for p in files)
        self.reports_dir = Path(reports_dir) if reports_dir is not None else None
        self.max_file_bytes = max_file_bytes
        self._walk = walk
        self._allow = allow  # checked for reports too: a report may be a link out of the allowed folders

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], reports_dir: str | Path | None = None) -> "FolderSource":
        return cls(collect_image_files(paths), reports_dir)

    @classmethod
    def walking(cls, folder: Path, reports_dir: str | Path | None = None, allow=allow_any) -> "FolderSource":
        """A source whose files are still being listed: ``BatchRun`` lists them step by step."""
        return cls([], reports_dir, walk=FolderWalk(folder, allow), allow=allow)

    @property
    def listing(self) -> bool:
        return self._walk is not None and not self._walk.done

    def list_more(self) -> str:
        """List for a moment; returns what has been found so far, for the progress line."""
        assert self._walk is not None, "only a walking() source lists"
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
        # A forked process (a DataLoader worker) shares the open file's offset with its parent, so
        # reading members from both would interleave their seeks: each process opens its own.
        self._archive_path = archive if isinstance(archive, (str, os.PathLike)) else None
        self._opened_by = os.getpid()
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

    def _archive(self) -> zipfile.ZipFile:
        if self._opened_by != os.getpid():
            if self._archive_path is None:
                raise BatchInputError("an archive opened from memory cannot be read from another process")
            self._zip, self._opened_by = zipfile.ZipFile(self._archive_path), os.getpid()
        return self._zip

    def __getstate__(self) -> dict:
        """Pickled (for a spawned worker) without the open file, which the worker reopens."""
        if self._archive_path is None:
            raise BatchInputError("an archive opened from memory cannot be sent to another process")
        return {**self.__dict__, "_zip": None, "_opened_by": None}

    def _read(self, info: zipfile.ZipInfo, name: str, limit: int) -> bytes:
        if info.file_size > limit:
            raise ImageTooLargeError(f"{name}: the archive member declares {_megabytes(info.file_size)}, "
                                     f"more than the {_megabytes(limit)} allowed")
        parts, total = [], 0
        try:
            with self._archive().open(info) as member:
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
        if self._zip is not None:
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
