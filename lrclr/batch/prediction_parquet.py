"""Batch predictions as Parquet, beside the CSV, for runs too large to read as text.

The columns are the CSV's (``lrclr.batch.prediction_csv.csv_header``), with types: probabilities
float32 (the model's own precision, not the CSV's six decimals), report statuses int8 (1 stated,
0 negated, -1 uncertain), text columns as strings; an empty probability or status is null. Text is
stored as it is, not escaped as the CSV escapes cells for spreadsheets: Parquet is read by data
tools, where a leading ``'`` would be part of the file name.

pyarrow is imported only here, when a run asks for Parquet (``--parquet``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from lrclr.batch.prediction_csv import csv_header
from lrclr.batch.scoring import PredictionRow


def _pyarrow():
    import pyarrow
    import pyarrow.parquet

    return pyarrow, pyarrow.parquet


def parquet_schema(findings: Sequence[str], with_reports: bool):
    pa, _ = _pyarrow()
    names = csv_header(findings, with_reports)
    types = [pa.string(), *(pa.float32() for _ in findings)]
    if with_reports:
        types += [*(pa.int8() for _ in findings), pa.string()]
    types += [pa.string(), pa.string()]
    return pa.schema(list(zip(names, types)))


def prediction_table(rows: Iterable[PredictionRow], findings: Sequence[str], with_reports: bool):
    """The rows as one pyarrow Table with ``parquet_schema``'s columns."""
    pa, _ = _pyarrow()
    rows = list(rows)
    columns: list[list] = [[row.image for row in rows]]
    columns += [[row.probabilities.get(f) for row in rows] for f in findings]
    if with_reports:
        columns += [[row.report_labels.get(f) for row in rows] for f in findings]
        columns.append([row.report_note for row in rows])
    columns += [[row.input_check for row in rows], [row.error for row in rows]]
    return pa.Table.from_arrays(columns, schema=parquet_schema(findings, with_reports))


def write_parquet(rows: Iterable[PredictionRow], path: Path, findings: Sequence[str], with_reports: bool) -> None:
    _, pq = _pyarrow()
    pq.write_table(prediction_table(rows, findings, with_reports), path)


def concatenate_parquet(parts: Sequence[Path], out: Path, findings: Sequence[str], with_reports: bool) -> int:
    """Append the parts' rows in order into one file, a part at a time (memory stays one part's);
    returns the number of rows written. A part with other columns is refused."""
    _, pq = _pyarrow()
    schema = parquet_schema(findings, with_reports)
    total = 0
    with pq.ParquetWriter(out, schema) as writer:
        for part in parts:
            table = pq.read_table(part)
            if not table.schema.equals(schema):
                raise ValueError(f"{part} has other columns than this run writes")
            writer.write_table(table)
            total += table.num_rows
    return total
