"""The flag store's SQLite engine: one file on one host (the default).

Durability: WAL journal, ``synchronous=FULL`` (a commit survives power loss, not only a crash: a
flag is a radiologist's work and costs one fsync per click), a 30 s busy timeout plus ``BEGIN
IMMEDIATE`` so concurrent writers queue instead of failing, and the schema version in ``PRAGMA
user_version``.

Threads: Streamlit runs each session's script in its own thread and a store is shared between
sessions, so one connection is opened with ``check_same_thread=False`` and guarded by a lock.
Thread-local connections would leak one per script-run thread; calls here take milliseconds, so
serialising them in-process costs nothing noticeable (SQLite serialises writers anyway).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from lrclr.annotations.schema import MIGRATIONS
from lrclr.errors import AnnotationStoreError

BUSY_TIMEOUT_MS = 30_000
LOCK_RETRIES = 5
T = TypeVar("T")


def _locked(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


class SQLiteEngine:
    """Transactions, schema version and checks of one SQLite file, for :class:`AnnotationStore`."""

    name = "sqlite"
    migrations = MIGRATIONS["sqlite"]
    database_errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # timeout= is SQLite's busy timeout; isolation_level=None: we issue BEGIN/COMMIT ourselves
            self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                                         isolation_level=None, check_same_thread=False)
        except (sqlite3.DatabaseError, OSError) as error:
            raise AnnotationStoreError(f"Could not open the annotation store {path}: {error}") from error

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @staticmethod
    def redact(text: str) -> str:
        return text  # a path holds no secret

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AnnotationStoreError(f"The annotation store {self.location} is closed")
        return self._conn

    def _retry(self, action: Callable[[], T]) -> T:
        for attempt in range(LOCK_RETRIES):
            try:
                return action()
            except sqlite3.OperationalError as error:
                if not _locked(error):
                    raise
                if attempt == LOCK_RETRIES - 1:
                    raise AnnotationStoreError(
                        f"The annotation store {self.location} stayed locked by other writers "
                        f"({error}); try again") from error
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body(connection)`` in one ``BEGIN IMMEDIATE`` transaction: all of it or none."""
        def attempt():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        with self.lock:
            return self._retry(attempt)

    migrate = write  # BEGIN IMMEDIATE already keeps a second process out while one migrates

    def read(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self.lock:
            return self._retry(lambda: self._connection().execute(sql, tuple(params)).fetchall())

    def read_together(self, body: Callable[[], T]) -> T:
        """``body()``'s reads in one transaction, so that they see one state of the file."""
        with self.lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                return body()
            finally:
                conn.execute("COMMIT")

    def prepare(self) -> None:
        """Connection settings, applied once the schema version is known not to be newer."""
        def settings():
            conn = self._connection()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        with self.lock:
            self._retry(settings)

    def schema_version(self, conn: sqlite3.Connection | None = None) -> int:
        if conn is None:
            return self.read("PRAGMA user_version")[0][0]
        return conn.execute("PRAGMA user_version").fetchone()[0]

    @staticmethod
    def set_schema_version(conn: sqlite3.Connection, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(version)}")  # PRAGMA takes no parameters

    @staticmethod
    def after_import(conn: sqlite3.Connection) -> None:
        """Nothing to do: AUTOINCREMENT carries on after the largest id inserted."""

    def storage_problems(self) -> list[str]:
        """SQLite's own check of the file's pages and indexes."""
        rows = [row[0] for row in self.read("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows
