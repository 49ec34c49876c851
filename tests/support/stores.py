"""Flag-store helpers: a distinct pair per number, and raw SQL past the store (sqlite3 or psycopg)."""

from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path


from lrclr.annotations.records import PairKey, sha256_hex

IMAGE = sha256_hex(b"demo image bytes")

REPORT = sha256_hex("Small left pleural effusion.")


def make_pair(i: int, case: str = "demo-01", model: str = "lrclr-nih") -> PairKey:
    """A distinct region-word pair for every i (character span and region rank vary with it)."""
    return PairKey(model, case, IMAGE, REPORT, word_index=i, word=f"word{i}", char_start=10 * i,
                   char_end=10 * i + 5, region_rank=1 + i % 7, cell_row=i % 14, cell_col=i % 13,
                   box=(16.0 * (i % 13), 16.0 * (i % 14), 16.0 * (i % 13) + 16.5, 16.0 * (i % 14) + 16.25))


@contextmanager

def raw_sql(target):
    """A connection straight to the store's database, past the store: sqlite3 or psycopg, autocommit."""
    if isinstance(target, Path):
        with closing(sqlite3.connect(target, isolation_level=None)) as conn:
            yield conn
    else:
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            yield conn


def raw_errors(target) -> type[Exception]:
    if isinstance(target, Path):
        return sqlite3.DatabaseError
    import psycopg

    return psycopg.Error

BATCH = 25
