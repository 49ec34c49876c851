"""The flag store's exchange formats: CSV (one table per file, text cells escaped against formula
injection) and the JSON export's format name, and reading and writing them from paths or open files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lrclr.annotations.schema import (
    HISTORY_COLUMNS,
    VERDICT_COLUMNS,
)
from lrclr.errors import AnnotationStoreError
from lrclr.escaping import csv_text_cell, csv_text_value

if TYPE_CHECKING:  # only for type hints: importing lrclr.model.explain would pull in torch
    pass

from lrclr.annotations.records import HistoryEntry, Verdict, history_from_row, verdict_from_row

EXPORT_FORMAT = "lrclr-annotations"

_INT_COLUMNS = {"id", "verdict_id", "word_index", "char_start", "char_end", "region_rank",
                "cell_row", "cell_col", "revision", "undoes"}

_FLOAT_COLUMNS = {"box_x0", "box_y0", "box_x1", "box_y1"}


def csv_layout(table: str) -> tuple[tuple[str, ...], set[str]]:
    if table == "verdicts":
        return VERDICT_COLUMNS, set()
    if table == "history":
        return HISTORY_COLUMNS, {"verdict", "comment", "previous_verdict", "previous_comment", "undoes"}
    raise ValueError(f"table must be 'verdicts' or 'history', got {table!r}")


def csv_cell(value: Any, nullable: bool) -> str:
    """None -> empty cell; in a nullable column an empty string is a lone ``'``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" if nullable and value == "" else csv_text_cell(value)
    return str(value)


def csv_value(cell: str, column: str, nullable: bool) -> Any:
    if cell == "":
        return None if nullable else ""
    if column in _INT_COLUMNS:
        return int(cell)
    if column in _FLOAT_COLUMNS:
        return float(cell)
    return csv_text_value(cell)


def read_csv(source: str | Path | IO[str], table: str = "verdicts") -> list[Verdict] | list[HistoryEntry]:
    """Parse an :meth:`AnnotationStore.export_csv` file back into verdicts or history entries."""
    columns, nullable = csv_layout(table)
    text = read_text(source)
    reader = csv.reader(io.StringIO(text, newline=""))
    if tuple(next(reader, ())) != columns:
        raise AnnotationStoreError(f"{source} is not an LRCLR {table} CSV export (unexpected header)")
    # A generator, so each row is parsed and built in turn, as before; two list comprehensions give
    # the type checker one record type per list.
    rows = (tuple(csv_value(cell, c, c in nullable) for c, cell in zip(columns, row)) for row in reader)
    if table == "verdicts":
        return [verdict_from_row(values) for values in rows]
    return [history_from_row(values) for values in rows]


def write_text(target: str | Path | IO[str], text: str) -> None:
    if isinstance(target, (str, Path)):
        Path(target).write_text(text, encoding="utf-8", newline="")
    else:
        target.write(text)


def read_text(source: str | Path | IO[str]) -> str:
    """Text exactly as stored: no newline translation (a comment may hold a CR)."""
    if isinstance(source, (str, Path)):
        with open(source, encoding="utf-8", newline="") as file:
            return file.read()
    return source.read()
