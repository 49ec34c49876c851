"""What the flag store holds: a pair (a report word and an image region), a reader's verdict on it,
and the history entry of each change, with the checks every value passes before it is stored.

No patient identifiers: images and reports are named by their SHA-256, and ``case_id`` must be a
non-identifying id (a demo case id, or a prefix of the upload's SHA-256).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lrclr.annotations.schema import PAIR_COLUMNS

if TYPE_CHECKING:  # only for type hints: importing lrclr.model.explain would pull in torch
    from lrclr.model.explain import RegionExplanation, WordExplanation


VERDICTS = ("bad match", "good match", "unsure")
ACTIONS = ("create", "update", "undo", "delete")
MAX_COMMENT = 5000
MAX_TEXT = 200  # annotator, model id, case id, word


def sha256_hex(data: bytes | str) -> str:
    """The SHA-256 hex digest of bytes (an image file) or of text encoded as UTF-8 (a report)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def checked_text(name: str, value: Any, limit: int, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters long; at most {limit} are allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{name} is not valid Unicode text ({error.reason})") from None
    if "\x00" in value:  # PostgreSQL's text cannot hold it; refused on both engines alike
        raise ValueError(f"{name} contains a NUL character")
    return value


def checked_count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class PairKey:
    """The region-word pair judged. Identity: the model, case, hashes, character span and rank."""

    model_id: str
    case_id: str  # non-identifying: a demo case id or the upload's SHA-256 prefix
    image_sha256: str
    report_sha256: str
    word_index: int
    word: str
    char_start: int
    char_end: int
    region_rank: int  # 1 = the model's most significant region
    cell_row: int
    cell_col: int
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in original image pixels

    def __post_init__(self) -> None:
        for name in ("model_id", "case_id", "word"):
            checked_text(name, getattr(self, name), MAX_TEXT)
        for name in ("image_sha256", "report_sha256"):
            value = getattr(self, name)
            if not (isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef")):
                raise ValueError(f"{name} must be 64 lowercase hex digits, got {value!r}")
        for name in ("word_index", "char_start", "cell_row", "cell_col"):
            checked_count(name, getattr(self, name))
        checked_count("char_end", self.char_end, self.char_start)
        checked_count("region_rank", self.region_rank, 1)
        box = tuple(float(v) for v in self.box)
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {self.box!r}")
        object.__setattr__(self, "box", box)

    @property
    def identity(self) -> tuple:
        """What makes two readers' verdicts be about the same pair."""
        return (self.model_id, self.case_id, self.image_sha256, self.report_sha256,
                self.char_start, self.char_end, self.region_rank)

    @classmethod
    def from_explanation(cls, model_id: str, case_id: str, image_sha256: str, report_sha256: str,
                         word: WordExplanation, region: RegionExplanation) -> PairKey:
        return cls(model_id, case_id, image_sha256, report_sha256, word.index, word.text, word.start,
                   word.end, region.rank, region.cell[0], region.cell[1], region.box)


@dataclass(frozen=True)
class Verdict:
    """A current verdict: one per annotator and pair."""

    id: int | None  # None until the database gives the row its id
    annotator: str
    pair: PairKey
    verdict: str
    comment: str
    created_at: str
    updated_at: str
    revision: int  # 1 when created, +1 on every change


@dataclass(frozen=True)
class HistoryEntry:
    """One change. ``verdict``/``comment`` are the state after it (None: the row no longer exists)."""

    id: int | None  # None until the database gives the row its id
    verdict_id: int
    annotator: str
    action: str  # create | update | delete | undo
    verdict: str | None
    comment: str | None
    previous_verdict: str | None  # None: the row did not exist before
    previous_comment: str | None
    revision: int
    undoes: int | None  # for an undo: the id of the entry it reverted
    at: str
    pair: PairKey


def checked_verdict(annotator: str, verdict: str, comment: str) -> tuple[str, str, str]:
    annotator = checked_text("annotator", annotator, MAX_TEXT).strip()
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
    return annotator, verdict, checked_text("comment", comment, MAX_COMMENT, empty_ok=True)


# Rows in the schema's column order (lrclr.annotations.schema) <-> records: the store's tables and
# the CSV exports share them.
def pair_values(pair: PairKey) -> tuple:
    return (pair.model_id, pair.case_id, pair.image_sha256, pair.report_sha256, pair.word_index,
            pair.word, pair.char_start, pair.char_end, pair.region_rank, pair.cell_row,
            pair.cell_col, *pair.box)


def pair_from_values(values: tuple | list) -> PairKey:
    # ignore: the slice fills the 11 fields before box, but mypy cannot count a slice's items
    return PairKey(*values[:11], box=tuple(values[11:15]))  # type: ignore[misc]


def verdict_from_row(row: tuple) -> Verdict:
    tail = row[2 + len(PAIR_COLUMNS):]
    return Verdict(row[0], row[1], pair_from_values(row[2:2 + len(PAIR_COLUMNS)]), *tail)


def history_from_row(row: tuple) -> HistoryEntry:
    # ignore: the slice fills the 11 fields before pair, but mypy cannot count a slice's items
    return HistoryEntry(*row[:11], pair=pair_from_values(row[11:]))  # type: ignore[misc]


def verdict_row(v: Verdict) -> tuple:
    return (v.id, v.annotator, *pair_values(v.pair), v.verdict, v.comment, v.created_at,
            v.updated_at, v.revision)


def history_row(h: HistoryEntry) -> tuple:
    return (h.id, h.verdict_id, h.annotator, h.action, h.verdict, h.comment, h.previous_verdict,
            h.previous_comment, h.revision, h.undoes, h.at, *pair_values(h.pair))
