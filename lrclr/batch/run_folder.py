"""The folder an archive run writes, and what makes a run resumable and its parts mergeable.

    DIR/manifest.json                 what the run scores (``RunPlan``) and each session that ran it
    DIR/parts/chunk-000000.csv        one part per chunk: a CSV with the header, in input order
    DIR/parts/chunk-000000.parquet    the same rows as Parquet (``--parquet``)
    DIR/predictions.csv               the parts merged: the bytes ``python -m lrclr predict --out
                                      FILE.csv`` writes for the same inputs (and .parquet)

A chunk is a fixed slice of the input list (``chunk_size`` files), and the unit of model batching:
its batches start at its first file, so what a part holds never depends on how many processes ran
or which of them scored it. A part is written to a temporary file and renamed into place, so a
part that exists is complete: a resumed run scores only the chunks without one. The manifest
records everything that changes a row; a resume whose inputs, model, findings or batching differ
is refused rather than mixed into parts scored otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from lrclr.batch.prediction_csv import csv_header, write_csv
from lrclr.batch.scoring import PredictionRow
from lrclr.errors import LRCLRError

FORMAT = "lrclr-archive-run/1"
MANIFEST = "manifest.json"
PARTS = "parts"
MERGED = "predictions"
DEFAULT_CHUNK_SIZE = 1024
# The model files whose bytes decide the scores: weights, architecture, and the card's calibration.
MODEL_FILES = ("config.json", "model.safetensors", "model_card.json")


class RunFolderError(LRCLRError):
    """The folder cannot take this run (another run's folder, an incomplete run to merge)."""


@dataclass(frozen=True)
class RunPlan:
    """Everything that decides a run's rows; a resume must match it field for field."""

    inputs: int  # how many files
    inputs_sha256: str  # of the files' names and sizes, in order (``inputs_fingerprint``)
    with_reports: bool
    model_id: str
    model_sha256: str  # of MODEL_FILES (``model_fingerprint``)
    findings: tuple[str, ...]
    chunk_size: int
    batch_size: int
    precision: str
    parquet: bool

    @property
    def chunks(self) -> int:
        return -(-self.inputs // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.inputs))

    def batches(self, chunks: Sequence[int]) -> list[list[int]]:
        """The input indices of each model batch of ``chunks``, in order; no batch spans two chunks."""
        return [list(indices[i:i + self.batch_size]) for chunk in chunks
                for indices in (self.chunk_range(chunk),) for i in range(0, len(indices), self.batch_size)]

    @classmethod
    def from_dict(cls, data: dict) -> "RunPlan":
        values = {f.name: data[f.name] for f in fields(cls)}
        return cls(**{**values, "findings": tuple(values["findings"])})


@dataclass(frozen=True)
class Session:
    """One start of the run (the first or a resume): recorded in the manifest, for the record."""

    started: str
    world_size: int
    device: str  # e.g. "CPU (2 threads)": on a CPU the thread count moves the last digits
    chunks_done_before: int
    chunks_to_score: int


@dataclass(frozen=True)
class MergeResult:
    rows: int
    scored: int
    failed: int
    files: tuple[Path, ...]


def inputs_fingerprint(inputs) -> str:
    digest = hashlib.sha256()
    for item in inputs:
        digest.update(f"{item.name}\t{item.size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def model_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(folder) / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(2**20), b""):
                    digest.update(block)
    return digest.hexdigest()


def assign_chunks(missing: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This rank's share of the chunks still to score: round-robin, so ranks finish together
    however the missing chunks lie (a resume after one rank was killed)."""
    return list(missing[rank::world_size])


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.parts = self.root / PARTS

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def part(self, chunk: int, suffix: str = ".csv") -> Path:
        return self.parts / f"chunk-{chunk:06d}{suffix}"

    def read_manifest(self) -> dict | None:
        if not self.manifest_path.is_file():
            return None
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunFolderError(f"{self.manifest_path} cannot be read ({error})") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RunFolderError(f"{self.root} is not an archive run's folder ({MANIFEST} is of another kind)")
        return data

    def read_plan(self) -> RunPlan:
        data = self.read_manifest()
        if data is None:
            raise RunFolderError(f"{self.root} holds no archive run (no {MANIFEST})")
        return RunPlan.from_dict(data["plan"])

    def start(self, plan: RunPlan, session: Session) -> list[str]:
        """Create the folder for ``plan``, or check that it holds the same run; record the session.
        Returns notes for the user (a resume on another device)."""
        data = self.read_manifest()
        if data is None:
            if self.root.exists() and any(p.name != PARTS for p in self.root.iterdir()):
                raise RunFolderError(f"{self.root} is not empty and holds no archive run: choose a new or empty --out folder")
            data = {"format": FORMAT, "plan": asdict(plan), "sessions": []}
        else:
            differences = plan_differences(RunPlan.from_dict(data["plan"]), plan)
            if differences:
                raise RunFolderError(f"{self.root} holds another run, so it is not resumed: " + "; ".join(differences)
                                     + ". Give the run's own inputs and options to resume it, or a new --out folder.")
        notes = []
        if data["sessions"] and data["sessions"][0]["device"] != session.device:
            notes.append(f"this run was started on {data['sessions'][0]['device']} and is resumed on {session.device}: "
                         "the last digits of the probabilities can differ between the two")
        data["sessions"].append(asdict(session))
        self.parts.mkdir(parents=True, exist_ok=True)
        for stale in [*self.parts.glob(".*.tmp"), *self.root.glob(".*.tmp")]:  # left by a killed run
            stale.unlink(missing_ok=True)
        _write_atomically(self.manifest_path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
        return notes

    def missing_chunks(self, plan: RunPlan) -> list[int]:
        suffixes = (".csv", ".parquet") if plan.parquet else (".csv",)
        return [c for c in range(plan.chunks) if not all(self.part(c, s).is_file() for s in suffixes)]

    def write_part(self, plan: RunPlan, chunk: int, rows: Sequence[PredictionRow]) -> None:
        """Write a chunk's rows; the CSV is renamed into place last, after the Parquet file."""
        if plan.parquet:
            from lrclr.batch.prediction_parquet import write_parquet

            temporary = self._temporary(chunk, ".parquet")
            write_parquet(rows, temporary, plan.findings, plan.with_reports)
            os.replace(temporary, self.part(chunk, ".parquet"))
        buffer = io.StringIO(newline="")
        write_csv(rows, buffer, plan.findings, plan.with_reports)
        _write_atomically(self.part(chunk), buffer.getvalue().encode("utf-8"), self._temporary(chunk, ".csv"))

    def _temporary(self, chunk: int, suffix: str) -> Path:
        return self.parts / f".chunk-{chunk:06d}{suffix}.{os.getpid()}.tmp"

    def merge(self, plan: RunPlan | None = None) -> MergeResult:
        """Concatenate the parts in chunk order into DIR/predictions.csv (and .parquet)."""
        plan = plan or self.read_plan()
        missing = self.missing_chunks(plan)
        if missing:
            first = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise RunFolderError(f"{len(missing)} of {plan.chunks} chunks have no part yet (chunks {first}): "
                                 "run the same command again to score them")
        files = [self.root / f"{MERGED}.csv"]
        rows, failed = self._merge_csv(plan, files[0])
        if plan.parquet:
            from lrclr.batch.prediction_parquet import concatenate_parquet

            files.append(self.root / f"{MERGED}.parquet")
            temporary = _temporary_beside(files[1])
            try:
                if concatenate_parquet([self.part(c, ".parquet") for c in range(plan.chunks)], temporary,
                                       plan.findings, plan.with_reports) != rows:
                    raise RunFolderError("the Parquet parts hold other rows than the CSV parts")
                os.replace(temporary, files[1])
            finally:
                temporary.unlink(missing_ok=True)  # only left when the merge failed
        return MergeResult(rows, rows - failed, failed, tuple(files))

    def _merge_csv(self, plan: RunPlan, out: Path) -> tuple[int, int]:
        """Write the header, then each part's rows as they are (a part at a time in memory);
        returns (rows, rows with an error). A part that is not this run's chunk is refused."""
        header = _csv_line(csv_header(plan.findings, plan.with_reports))
        rows = failed = 0
        temporary = _temporary_beside(out)
        try:
            with open(temporary, "wb") as merged:
                merged.write(header)
                for chunk in range(plan.chunks):
                    data = self.part(chunk).read_bytes()
                    parsed = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
                    expected = len(plan.chunk_range(chunk))
                    if not data.startswith(header) or len(parsed) != expected + 1:
                        raise RunFolderError(f"{self.part(chunk)} is not this run's part for chunk {chunk} ({len(parsed) - 1} "
                                             f"rows, {expected} expected): delete it to rescore the chunk")
                    merged.write(data[len(header):])
                    rows += expected
                    failed += sum(1 for row in parsed[1:] if row[-1])
                merged.flush()
                os.fsync(merged.fileno())
            os.replace(temporary, out)
        finally:
            temporary.unlink(missing_ok=True)  # only left when the merge failed
        return rows, failed


def plan_differences(run: RunPlan, given: RunPlan) -> list[str]:
    """What a resume changes, in words (empty: the same run)."""
    described = {"inputs_sha256": lambda p: f"{p.inputs} files (fingerprint {p.inputs_sha256[:12]})",
                 "model_sha256": lambda p: f"model {p.model_id} (fingerprint {p.model_sha256[:12]})"}
    differences = []
    for f in fields(RunPlan):
        if f.name in ("inputs", "model_id") or getattr(run, f.name) == getattr(given, f.name):
            continue
        show = described.get(f.name, lambda p: repr(getattr(p, f.name)))
        label = {"inputs_sha256": "inputs", "model_sha256": "--model", "with_reports": "reports"}.get(
            f.name, "--" + f.name.replace("_", "-"))
        differences.append(f"{label}: the run has {show(run)}, this command {show(given)}")
    return differences


def _csv_line(fields_: Sequence[str]) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerow(fields_)
    return buffer.getvalue().encode("utf-8")


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_atomically(path: Path, data: bytes, temporary: Path | None = None) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename: ``path`` is never partial."""
    temporary = temporary or _temporary_beside(path)
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
