"""The flag store: readers' verdicts on region-word pairs, with an append-only history.

A verdict says whether a report word (a character span of the report) and an image region (a rank
in the model's region list, with its grid cell and box in original pixels) are a ``bad match``, a
``good match`` or ``unsure``. One row per (annotator, pair) holds the current verdict; every change
(create, update, delete, undo) is also appended to ``history``, which triggers make append-only.

No patient identifiers are stored: images and reports are named by their SHA-256, and ``case_id``
must be a non-identifying id (a demo case id, or a prefix of the upload's SHA-256), never a name,
MRN, accession number or file name.

Two engines keep the same tables (``lrclr.annotations.schema``): a SQLite file, the default
(``lrclr.annotations.sqlite_engine``), or a PostgreSQL database named by a ``postgresql://`` URL, which
several app servers can share (``lrclr.annotations.postgres_engine``). On both, one transaction per call (a
batch is all or nothing), concurrent writers behave as if one ran after another, and the schema
version is checked on opening, with forward migrations. This module is the part they share.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Iterable, TypeGuard, cast

from lrclr.annotations.exchange import EXPORT_FORMAT, csv_cell, csv_layout, read_text, write_text
from lrclr.annotations.records import (
    MAX_TEXT,
    VERDICTS,
    HistoryEntry,
    PairKey,
    Verdict,
    checked_text,
    checked_verdict,
    history_from_row,
    history_row,
    utc_now,
    verdict_from_row,
    verdict_row,
)
from lrclr.annotations.schema import HISTORY_COLUMNS, KEY_COLUMNS, PAIR_COLUMNS, SCHEMA_VERSION, VERDICT_COLUMNS
from lrclr.annotations.sqlite_engine import SQLiteEngine
from lrclr.errors import AnnotationStoreError

DATA_DIR_ENV = "LRCLR_DATA_DIR"
DEFAULT_DB_NAME = "annotations.sqlite3"


def default_data_dir() -> Path:
    """``$LRCLR_DATA_DIR``, else the XDG user data folder (``~/.local/share/lrclr-review``).

    Flags are user data, not a cache and not part of the code: outside the repository a ``git
    clean`` or a reinstall cannot wipe them and they can never be committed by accident.
    """
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "lrclr-review"


_PAIR_SQL = ", ".join(PAIR_COLUMNS)
_SELECT_VERDICTS = f"SELECT {', '.join(VERDICT_COLUMNS)} FROM verdicts"
_SELECT_HISTORY = f"SELECT {', '.join(HISTORY_COLUMNS)} FROM history"

# Both engines take this SQL as written (the PostgreSQL engine turns ``?`` into psycopg's ``%s``).
# New rows get their id from the database (RETURNING it); an import or an undone delete gives it.
_INSERT_VERDICT = (f"INSERT INTO verdicts ({', '.join(VERDICT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(VERDICT_COLUMNS))})")
_UPSERT_VERDICT = (f"{_INSERT_VERDICT} ON CONFLICT (id) DO UPDATE SET "
                   + ", ".join(f"{column} = excluded.{column}" for column in VERDICT_COLUMNS[1:]))
_ADD_VERDICT = (f"INSERT INTO verdicts ({', '.join(VERDICT_COLUMNS[1:])}) "
                f"VALUES ({', '.join('?' * (len(VERDICT_COLUMNS) - 1))}) RETURNING id")
_INSERT_HISTORY = (f"INSERT INTO history ({', '.join(HISTORY_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})")
_APPEND_HISTORY = (f"INSERT INTO history ({', '.join(HISTORY_COLUMNS[1:])}) "
                   f"VALUES ({', '.join('?' * (len(HISTORY_COLUMNS) - 1))}) RETURNING id")
_WHERE_KEY = " AND ".join(f"{column} = ?" for column in KEY_COLUMNS)
_FILTERS = ("annotator", "model_id", "case_id", "image_sha256", "report_sha256", "verdict")
_GROUPS = {"case_id": "case_id", "word": "lower(word)", "annotator": "annotator",
           "model_id": "model_id", "day": "substr(created_at, 1, 10)"}


# What integrity_check asks of the store on either engine: the history replays to the current
# verdicts. A current verdict whose latest history entry does not hold it, or a deleted one whose
# latest entry still holds a verdict, means a change reached one table and not the other.
_UNLOGGED_VERDICTS = """SELECT v.id FROM verdicts AS v WHERE NOT EXISTS (SELECT 1 FROM history AS h
    WHERE h.id = (SELECT max(id) FROM history WHERE verdict_id = v.id) AND h.verdict = v.verdict
    AND h.comment = v.comment AND h.revision = v.revision) ORDER BY v.id"""
_UNDELETED_ENTRIES = """SELECT h.verdict_id FROM history AS h
    WHERE h.id = (SELECT max(id) FROM history WHERE verdict_id = h.verdict_id)
    AND h.verdict IS NOT NULL AND NOT EXISTS (SELECT 1 FROM verdicts AS v WHERE v.id = h.verdict_id)
    ORDER BY h.verdict_id"""


def is_store_url(target: object) -> TypeGuard[str]:  # True only for a str
    """Whether ``target`` names a database by URL (any scheme: a wrong one gets its own message)
    rather than a SQLite file by path."""
    return isinstance(target, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target) is not None


def _engine(target: str | Path):
    """The engine for a ``postgresql://`` URL, else for a SQLite file at the path ``target``."""
    if is_store_url(target):
        from lrclr.annotations.postgres_engine import PostgresEngine  # psycopg loads only for a URL

        return PostgresEngine(target)
    return SQLiteEngine(Path(target).expanduser())


class AnnotationStore:
    """Verdicts and their history in a SQLite file or a PostgreSQL database (a ``postgresql://``
    URL). Safe to share between threads, processes and, on PostgreSQL, hosts.

    ``path`` is the SQLite file (None on PostgreSQL); ``location`` names the store in messages
    (the path, or the database without any password).
    """

    def __init__(self, target: str | Path) -> None:
        self._engine = _engine(target)  # raises AnnotationStoreError for a store it cannot open
        self.path: Path | None = self._engine.path
        self.location: str = self._engine.location
        try:
            self._setup()
        except AnnotationStoreError:
            self.close()
            raise
        except (*self._engine.database_errors, OSError) as error:
            self.close()
            raise AnnotationStoreError(f"Could not open the annotation store {self.location}: "
                                       f"{self._engine.redact(str(error))}") from error

    @classmethod
    def open(cls, data_dir: str | Path | None = None) -> AnnotationStore:
        """The store in ``data_dir`` (default: :func:`default_data_dir`), created if missing."""
        return cls(Path(data_dir if data_dir is not None else default_data_dir()) / DEFAULT_DB_NAME)

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.name

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> AnnotationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and schema ----------------------------------------------------------------

    def _write(self, body):
        """Run ``body(connection)`` in one transaction, as if no other writer ran meanwhile."""
        return self._engine.write(body)

    def _read(self, sql: str, params: Iterable = ()) -> list[tuple]:
        return self._engine.read(sql, params)

    def _setup(self) -> None:
        self._check_version(self._engine.schema_version())  # first: a newer store is left untouched
        self._engine.prepare()
        if self._engine.schema_version() != SCHEMA_VERSION:
            self._engine.migrate(self._migrate)

    def _check_version(self, version: int) -> int:
        if version > SCHEMA_VERSION:
            raise AnnotationStoreError(
                f"The annotation store {self.location} has schema version {version}, newer than this "
                f"LRCLR Review knows ({SCHEMA_VERSION}); upgrade LRCLR Review to open it. "
                "The store was left unchanged.")
        return version

    def _migrate(self, conn) -> None:
        # read again under the migration lock: another process may have migrated meanwhile
        version = self._check_version(self._engine.schema_version(conn))
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in self._engine.migrations[target - 1]:
                conn.execute(statement)
            self._engine.set_schema_version(conn, target)

    @property
    def schema_version(self) -> int:
        return self._engine.schema_version()

    def integrity_check(self) -> str:
        """``ok``, or the problems found, one a line: the engine's own check of its storage
        (SQLite's ``PRAGMA integrity_check``; on PostgreSQL that is the server's) and whether the
        history replays to the current verdicts."""
        problems = list(self._engine.storage_problems())
        problems += [f"verdict {row[0]} differs from its latest history entry"
                     for row in self._read(_UNLOGGED_VERDICTS)]
        problems += [f"verdict {row[0]} is gone but its history does not say deleted"
                     for row in self._read(_UNDELETED_ENTRIES)]
        return "\n".join(problems) or "ok"

    # -- writes ---------------------------------------------------------------------------------

    def record(self, annotator: str, pair: PairKey, verdict: str, comment: str = "") -> Verdict:
        """Set ``annotator``'s verdict on ``pair``; recording the same verdict and comment is a no-op."""
        return self.record_many([(annotator, pair, verdict, comment)])[0]

    def record_many(self, items: Iterable[tuple]) -> list[Verdict]:
        """Record ``(annotator, pair, verdict[, comment])`` items in ONE transaction: all or none."""
        checked = []
        for item in items:
            annotator, pair, verdict, *rest = item
            comment = rest[0] if rest else ""
            if not isinstance(pair, PairKey):
                raise ValueError(f"pair must be a PairKey, got {type(pair).__name__}")
            checked.append((pair, *checked_verdict(annotator, verdict, comment)))
        return self._write(lambda conn: [self._record(conn, *item) for item in checked])

    def _record(self, conn, pair: PairKey, annotator: str, verdict: str, comment: str) -> Verdict:
        now = utc_now()
        old = self._current(conn, annotator, pair)
        if old is None:
            new = Verdict(None, annotator, pair, verdict, comment, now, now, 1)
        elif (old.verdict, old.comment, old.pair) == (verdict, comment, pair):
            return old
        else:
            new = Verdict(old.id, annotator, pair, verdict, comment, old.created_at, now, old.revision + 1)
        new = self._put(conn, new)
        self._log(conn, "create" if old is None else "update", new, old, now)
        return new

    def remove(self, annotator: str, pair: PairKey) -> HistoryEntry | None:
        """Delete ``annotator``'s verdict on ``pair`` (history keeps it); None if there was none."""
        annotator = checked_text("annotator", annotator, MAX_TEXT).strip()

        def body(conn):
            old = self._current(conn, annotator, pair)
            if old is None:
                return None
            conn.execute("DELETE FROM verdicts WHERE id = ?", (old.id,))
            return self._log(conn, "delete", None, old, utc_now())
        return self._write(body)

    def undo_last(self, annotator: str) -> HistoryEntry | None:
        """Revert ``annotator``'s latest change not yet undone; returns the ``undo`` history entry.

        Undoing a create deletes the row, an update restores the previous verdict and comment, a
        delete restores the row under its old id. Repeated undos walk further back; None when
        there is nothing left to undo. The entry's ``verdict`` is None when the row was removed.
        """
        annotator = checked_text("annotator", annotator, MAX_TEXT).strip()
        return self._write(lambda conn: self._undo(conn, annotator))

    def _undo(self, conn, annotator: str) -> HistoryEntry | None:
        row = conn.execute(
            f"{_SELECT_HISTORY} AS h WHERE annotator = ? AND action != 'undo' AND NOT EXISTS "
            "(SELECT 1 FROM history AS u WHERE u.undoes = h.id) ORDER BY id DESC LIMIT 1",
            (annotator,)).fetchone()
        if row is None:
            return None
        target, now = history_from_row(row), utc_now()
        found = conn.execute(f"{_SELECT_VERDICTS} WHERE id = ?", (target.verdict_id,)).fetchone()
        current = verdict_from_row(found) if found else None
        revision = (current.revision if current else target.revision) + 1
        restored = None
        if target.previous_verdict is None:
            conn.execute("DELETE FROM verdicts WHERE id = ?", (target.verdict_id,))
        else:
            created = current.created_at if current else conn.execute(
                "SELECT min(at) FROM history WHERE verdict_id = ?", (target.verdict_id,)).fetchone()[0]
            restored = self._put(conn, Verdict(
                target.verdict_id, annotator, current.pair if current else target.pair,
                # cast: an entry with a previous verdict had a row, whose comment is NOT NULL
                target.previous_verdict, cast(str, target.previous_comment), created or now, now, revision))
        return self._log(conn, "undo", restored, current, now, like=target, revision=revision)

    def _current(self, conn, annotator: str, pair: PairKey) -> Verdict | None:
        key = (annotator, *pair.identity)
        row = conn.execute(f"{_SELECT_VERDICTS} WHERE {_WHERE_KEY}", key).fetchone()
        return verdict_from_row(row) if row else None

    @staticmethod
    def _put(conn, verdict: Verdict) -> Verdict:
        """Insert a new verdict (the database gives its id) or write one under its id (an update,
        or a deleted row that an undo restores)."""
        if verdict.id is None:
            (new_id,) = conn.execute(_ADD_VERDICT, verdict_row(verdict)[1:]).fetchone()
            return replace(verdict, id=new_id)
        conn.execute(_UPSERT_VERDICT, verdict_row(verdict))
        return verdict

    @staticmethod
    def _log(conn, action: str, new: Verdict | None, old: Verdict | None, at: str, *,
             like: HistoryEntry | None = None, revision: int = 0) -> HistoryEntry:
        """Append a change from ``old`` to ``new`` (``like``: the entry an undo reverts)."""
        source = like or new or old
        assert source is not None, "a change has a verdict before or after it"
        # An undo's entry names its verdict by verdict_id; a verdict saved by _put has its own id.
        verdict_id = like.verdict_id if like else source.id
        assert verdict_id is not None, "a change is logged for a saved verdict"
        entry = HistoryEntry(
            None, verdict_id, source.annotator, action,
            new.verdict if new else None, new.comment if new else None,
            old.verdict if old else None, old.comment if old else None,
            revision or source.revision, like.id if like else None, at, source.pair)
        (new_id,) = conn.execute(_APPEND_HISTORY, history_row(entry)[1:]).fetchone()
        return replace(entry, id=new_id)

    # -- reads ----------------------------------------------------------------------------------

    def verdicts(self, **filters: Any) -> list[Verdict]:
        """Current verdicts, oldest first, filtered by equality on annotator, model_id, case_id,
        image_sha256, report_sha256 or verdict (a None value means no filter)."""
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise ValueError(f"unknown filter {sorted(unknown)}; use {', '.join(_FILTERS)}")
        used = [(name, value) for name, value in filters.items() if value is not None]
        where = " AND ".join(f"{name} = ?" for name, _ in used)  # names from _FILTERS only
        sql = f"{_SELECT_VERDICTS}{' WHERE ' + where if where else ''} ORDER BY id"
        return [verdict_from_row(row) for row in self._read(sql, [value for _, value in used])]

    def history(self, annotator: str | None = None) -> list[HistoryEntry]:
        """Every change, oldest first (optionally one annotator's)."""
        if annotator is None:
            return [history_from_row(row) for row in self._read(f"{_SELECT_HISTORY} ORDER BY id")]
        sql = f"{_SELECT_HISTORY} WHERE annotator = ? ORDER BY id"
        return [history_from_row(row) for row in self._read(sql, (annotator,))]

    def counts(self, by: str, model_id: str | None = None) -> dict[str, dict[str, int]]:
        """Current verdicts counted per group and verdict: ``{group: {verdict: n}}``.

        ``by``: case_id, word (lower-cased), annotator, model_id or day (of creation, UTC). Days come
        in date order, other groups with the most bad matches first.
        """
        if by not in _GROUPS:
            raise ValueError(f"cannot count by {by!r}; use one of {', '.join(_GROUPS)}")
        where = " WHERE model_id = ?" if model_id is not None else ""
        rows = self._read(f"SELECT {_GROUPS[by]} AS grp, verdict, count(*) FROM verdicts{where} "
                          "GROUP BY grp, verdict", () if model_id is None else (model_id,))
        table: dict[str, dict[str, int]] = {}
        for group, verdict, n in rows:
            table.setdefault(group, dict.fromkeys(VERDICTS, 0))[verdict] = n
        order = sorted(table) if by == "day" else sorted(
            table, key=lambda g: (-table[g]["bad match"], -sum(table[g].values()), g))
        return {group: table[group] for group in order}

    def counts_by_case(self, model_id: str | None = None) -> dict[str, dict[str, int]]:
        """Cases with the most bad matches first."""
        return self.counts("case_id", model_id)

    # -- export and import ----------------------------------------------------------------------

    def snapshot(self) -> tuple[list[Verdict], list[HistoryEntry]]:
        """Verdicts and history read in one transaction, so they agree with each other."""
        return self._engine.read_together(lambda: (self.verdicts(), self.history()))

    def export_json(self, target: str | Path | IO[str]) -> None:
        """Everything, as JSON (ASCII-escaped, so bidi and control characters cannot hide)."""
        verdicts, history = self.snapshot()
        data = {"format": EXPORT_FORMAT, "schema_version": SCHEMA_VERSION, "exported_at": utc_now(),
                "verdicts": [dict(zip(VERDICT_COLUMNS, verdict_row(v))) for v in verdicts],
                "history": [dict(zip(HISTORY_COLUMNS, history_row(h))) for h in history]}
        write_text(target, json.dumps(data, indent=1, ensure_ascii=True) + "\n")

    def export_csv(self, target: str | Path | IO[str], table: str = "verdicts") -> None:
        """One table (``verdicts`` or ``history``) as CSV; read it back with :func:`read_csv`.

        Text cells that a spreadsheet would run as a formula (``= + - @``, tab, CR) or that start
        with ``'`` get a leading ``'``, which :func:`read_csv` removes: safe to open, and exact.
        """
        columns, nullable = csv_layout(table)
        verdicts, history = self.snapshot()
        rows = [verdict_row(v) for v in verdicts] if table == "verdicts" else [history_row(h) for h in history]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_cell(value, column in nullable) for column, value in zip(columns, row)])
        write_text(target, buffer.getvalue())

    def import_json(self, source: str | Path | IO[str]) -> tuple[int, int]:
        """Load an :meth:`export_json` file into this EMPTY store, keeping ids; (verdicts, history).

        One transaction: a bad row leaves the store empty. Merging into a non-empty store is refused.
        """
        text = read_text(source)
        try:
            data = json.loads(text)
            if data.get("format") != EXPORT_FORMAT or data.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"not an {EXPORT_FORMAT} export of schema version {SCHEMA_VERSION}")
            verdicts = [verdict_from_row(tuple(row[c] for c in VERDICT_COLUMNS)) for row in data["verdicts"]]
            history = [history_from_row(tuple(row[c] for c in HISTORY_COLUMNS)) for row in data["history"]]
            for v in verdicts:
                checked_verdict(v.annotator, v.verdict, v.comment)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise AnnotationStoreError(f"Cannot import {source}: {error}") from error

        def body(conn):
            if conn.execute("SELECT (SELECT count(*) FROM verdicts) + (SELECT count(*) FROM history)").fetchone()[0]:
                raise AnnotationStoreError(f"Import needs an empty store; {self.location} already has flags")
            conn.executemany(_INSERT_HISTORY, [history_row(h) for h in history])
            conn.executemany(_INSERT_VERDICT, [verdict_row(v) for v in verdicts])
            self._engine.after_import(conn)
            return len(verdicts), len(history)
        try:
            return self._write(body)
        except self._engine.database_errors as error:  # a CHECK, UNIQUE or type constraint of the schema
            raise AnnotationStoreError(f"Cannot import {source}: {self._engine.redact(str(error))}") from error


