"""Composed reports for NIH images, built once and cached.

Building the sentence bank labels every sentence of 3,955 OpenI reports (about 5 s) and composing
421 reports re-labels each one (about 2 s), too slow to repeat every time a dataset or a DataLoader
worker is constructed. Two caches, both keyed by the OpenI archive (path, size, modification time),
the seed and a fingerprint of the labeler's source code (a labeler change must not serve stale
reports):
- in the process, the sentence bank and every composed report;
- on disk, one JSONL file per key under ``<cache_dir>/composed/``, written atomically so parallel
  ranks never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from train.datasets.base import DatasetError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_OPENI = REPO_ROOT.parent / "shared" / "data" / "openi-reports" / "NLMCXR_reports.tgz"


@dataclass(frozen=True)
class CachedReport:
    text: str
    provenance: str  # "<OpenI report id>#<sentence index>,..."
    complete: bool  # False when some labelled finding had no clean sentence to state it


def default_openi_path() -> Path | None:
    """``$LRCLR_OPENI_REPORTS``, else the team's shared copy when present."""
    configured = os.environ.get("LRCLR_OPENI_REPORTS")
    if configured:
        return Path(configured)
    return SHARED_OPENI if SHARED_OPENI.exists() else None


def default_cache_dir() -> Path:
    configured = os.environ.get("LRCLR_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "lrclr"


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    import train.synthetic.composed_reports, lrclr.reports.finding_patterns, lrclr.reports.labeler, lrclr.reports.text
    digest = hashlib.sha256()
    for module in (train.synthetic.composed_reports, lrclr.reports.finding_patterns, lrclr.reports.labeler, lrclr.reports.text):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _archive_key(openi: Path) -> tuple[str, int, int]:
    if not openi.exists():
        raise DatasetError(f"OpenI reports not found at {openi}; composed reports need the archive "
                           "(NLMCXR_reports.tgz, see shared/data/README.md) or pass reports=None")
    stat = openi.stat()
    return str(openi.resolve()), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=2)
def _sentence_bank(path: str, size: int, mtime_ns: int):
    from train.synthetic.composed_reports import SentenceBank
    from lrclr.reports.text import load_openi_reports
    return SentenceBank.from_reports(load_openi_reports(path))


_MEMORY: dict[str, dict[tuple[str, tuple[str, ...]], CachedReport]] = {}


def composed_reports(rows: Sequence[tuple[str, tuple[str, ...]]], openi: Path, seed: int,
                     cache_dir: Path | None) -> dict[str, CachedReport]:
    """image -> composed report for (image, findings) rows; composes only what no cache holds."""
    archive = _archive_key(Path(openi))
    key = hashlib.sha256(repr((archive, int(seed), _code_fingerprint())).encode()).hexdigest()[:20]
    memory = _MEMORY.setdefault(key, {})
    cache_file = Path(cache_dir) / "composed" / f"{key}.jsonl" if cache_dir is not None else None
    wanted = [(image, tuple(findings)) for image, findings in rows]
    if cache_file is not None and any(row not in memory for row in wanted):
        memory.update(_read_cache(cache_file))
    missing = [row for row in wanted if row not in memory]
    if missing:
        bank = _sentence_bank(*archive)
        for image, findings in missing:
            report = bank.compose(image, findings, int(seed))
            memory[(image, findings)] = CachedReport(report.text, report.provenance, report.complete)
        if cache_file is not None:
            _write_cache(cache_file, memory)
    return {image: memory[(image, findings)] for image, findings in wanted}


def _read_cache(path: Path) -> dict[tuple[str, tuple[str, ...]], CachedReport]:
    if not path.is_file():
        return {}
    out = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            out[(record["image"], tuple(record["findings"]))] = CachedReport(
                record["text"], record["provenance"], record["complete"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # a damaged cache is rebuilt, never trusted
    return out


def _write_cache(path: Path, memory: dict[tuple[str, tuple[str, ...]], CachedReport]) -> None:
    lines = [json.dumps({"image": image, "findings": list(findings), "text": report.text,
                         "provenance": report.provenance, "complete": report.complete})
             for (image, findings), report in sorted(memory.items())]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                         suffix=".tmp") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only cache folder only costs speed


def read_composed_jsonl(path: Path) -> dict[str, CachedReport]:
    """Reports written by ``python -m train compose-reports --out``: image -> report."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"composed reports file not found: {path}")
    out = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            provenance = ",".join(f"{s['report_id']}#{s['sentence_index']}" for s in record.get("sentences", []))
            out[record["image"]] = CachedReport(record["text"], provenance, bool(record.get("complete", True)))
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{path} line {number} is not a composed-report record: {error}") from error
    return out
