"""The flag store's PostgreSQL engine: one database that every replica of the app writes to.

An annotation campaign may serve the app from several hosts behind a load balancer; one SQLite
file cannot be shared between hosts safely, a PostgreSQL server can. Same tables, schema version,
migrations and history as the SQLite engine (``lrclr.annotations.schema``); the driver is psycopg 3.

Concurrency: every write runs in a SERIALIZABLE transaction and is retried, from the start, when
PostgreSQL reports a serialization failure or deadlock (or, a few times, a unique violation: see
``UNIQUE_RETRIES``). Each write reads the current verdict and
then changes it, so this makes concurrent writers from any number of processes and hosts behave as
if they had run one after another, as SQLite's ``BEGIN IMMEDIATE`` does: no flag lost, none
duplicated, revisions and history in step. Migrations run under a transaction-scoped advisory lock
instead, so replicas starting together upgrade the schema once.

Connection: one per store, guarded by a lock (Streamlit's sessions share the store; each call
takes milliseconds). A connection the server dropped (a restart, an idle timeout, a failover) is
reopened and the call retried once, unless it was lost during COMMIT: then whether the change was
saved is unknown, and the error says so instead of risking a second copy.

Passwords: the URL should not hold one; libpq reads it from ``PGPASSWORD``, ``~/.pgpass`` or the
file in ``PGPASSFILE`` (or ``passfile=`` in the URL). A password given in the URL anyway is never
shown: messages name the database by a description without it.
"""

from __future__ import annotations

import random
import re
import threading
import time
from typing import Callable, Iterable, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from lrclr.annotations.schema import MIGRATIONS
from lrclr.errors import AnnotationStoreError

URL_SCHEMES = ("postgresql://", "postgres://")  # the two libpq accepts
RETRY_SECONDS = 30.0  # how long a write keeps retrying conflicts: SQLite's busy timeout
CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout
APPLICATION_NAME = "lrclr-review"  # how the store's sessions show in pg_stat_activity
VERSION_TABLE = "lrclr_schema_version"  # PostgreSQL has no PRAGMA user_version: a one-row table
MIGRATION_LOCK = 0x4C52434C52  # pg_advisory_xact_lock key ("LRCLR" in ASCII)
T = TypeVar("T")
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
# A write looks for the current verdict before inserting one, yet two SERIALIZABLE writers of the
# same new pair can still end in a unique violation instead of a serialization failure (PostgreSQL's
# manual, "Serializable Isolation Level"; seen here when the lookup scans a small table instead of
# its index). Run again, the write finds the other's row. Only a few times: a violation that comes
# back every time is not a race.
UNIQUE_RETRIES = 5


def _redact(text: str, url: str, password: str | None) -> str:
    """``text`` with the URL's password removed (libpq repeats a URL it cannot parse verbatim)."""
    if password:
        text = text.replace(password, "***")
    hidden = re.sub(r"(://[^/?#@]*?):[^/?#@]*@", r"\1:***@", url)
    hidden = re.sub(r"(?i)(password=)[^&\s]*", r"\1***", hidden)
    return text.replace(url, hidden)


class StoreURL:
    """A checked ``postgresql://`` URL: what libpq is given, and how messages name it."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not url.startswith(URL_SCHEMES):
            shown = _redact(str(url), str(url), None)
            raise AnnotationStoreError(
                f"The flag store URL {shown!r} is not a PostgreSQL URL; write "
                "postgresql://USER@HOST:PORT/DATABASE (or give a folder for a SQLite file)")
        self._url = url
        try:
            # libpq parses every value of a URL as a string; str() narrows psycopg's wider value type
            # (str | int | None) to what this class really holds, so the messages below are typed.
            params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
        except psycopg.Error as error:
            raise AnnotationStoreError(
                f"The flag store URL is not valid: {_redact(str(error), url, None).strip()}") from None
        self._password = params.get("password")
        if not params.get("dbname"):
            raise AnnotationStoreError(
                "The flag store URL names no database; write postgresql://USER@HOST:PORT/DATABASE")
        params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
        params.setdefault("application_name", APPLICATION_NAME)
        self.params = params
        where = params.get("host") or "the local socket"
        where += f":{params['port']}" if params.get("port") else ""
        user = f" as {params['user']}" if params.get("user") else ""
        self.description = f"PostgreSQL database {params['dbname']} on {where}{user}"

    def redact(self, text: str) -> str:
        return _redact(text, self._url, self._password)

    def __repr__(self) -> str:  # never the URL itself: it may hold a password
        return f"StoreURL({self.description!r})"


def _format_paramstyle(sql: str) -> str:
    """The store's SQL uses sqlite3's ``?`` placeholders; psycopg's are ``%s`` (and ``%`` is ``%%``)."""
    out, quoted = [], False
    for char in sql:
        if char == "'":
            quoted = not quoted
        out.append("%%" if char == "%" else "%s" if char == "?" and not quoted else char)
    return "".join(out)


class _Connection:
    """What the store's transaction bodies call (``execute``, ``executemany``), on psycopg."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Iterable = ()):
        params = tuple(params)
        return self._conn.execute(_format_paramstyle(sql), params) if params else self._conn.execute(sql)

    def executemany(self, sql: str, rows: Iterable[tuple]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_format_paramstyle(sql), list(rows))


class PostgresEngine:
    """Transactions, schema version and reconnection for a store in a PostgreSQL database."""

    name = "postgresql"
    migrations = MIGRATIONS["postgresql"]
    database_errors: tuple[type[Exception], ...] = (psycopg.Error,)
    path = None  # no file: the store is the database the URL names

    def __init__(self, url: str) -> None:
        self.url = StoreURL(url)
        self.location = self.url.description
        self.lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._closed = False
        self._in_transaction = False
        self._connection()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._drop()

    def redact(self, text: str) -> str:
        return self.url.redact(text)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection:
        """The open connection, reopened if the server dropped it."""
        if self._closed:
            raise AnnotationStoreError(f"The annotation store {self.location} is closed")
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._drop()
        if self._conn is None:
            try:
                # autocommit: the store issues BEGIN ... COMMIT itself, with the isolation it needs
                # libpq connection parameters go in as **kwargs; mypy matches the dict's str values
                # against connect()'s own typed keywords (prepare_threshold, ...), which it never holds.
                self._conn = psycopg.connect(**self.url.params, autocommit=True)  # type: ignore[arg-type]
            except psycopg.Error as error:
                # from None: the driver's own exception may repeat the URL, password included
                raise AnnotationStoreError(
                    f"Cannot reach the flag store ({self.location}): "
                    f"{self.url.redact(str(error)).strip()}") from None
        return self._conn

    def _lost(self, error: psycopg.Error, doing: str) -> AnnotationStoreError:
        return AnnotationStoreError(f"Lost the connection to the flag store ({self.location}) "
                                    f"{doing}: {self.url.redact(str(error)).strip()}")

    def _transaction(self, begin: str, body: Callable[[_Connection], T], *, retry_conflicts: bool) -> T:
        """``body`` inside ``begin`` ... COMMIT, retried on conflicts and once on a dropped connection."""
        with self.lock:
            deadline, attempt, reconnected = time.monotonic() + RETRY_SECONDS, 0, False
            unique_retries = 0
            while True:
                conn = self._connection()
                committing = False
                try:
                    conn.execute(begin)
                    self._in_transaction = True
                    result = body(_Connection(conn))
                    committing = True
                    conn.execute("COMMIT")
                    return result
                except (*_RETRYABLE, pg_errors.UniqueViolation) as error:
                    self._rollback(conn)
                    if isinstance(error, pg_errors.UniqueViolation):
                        unique_retries += 1
                        if not retry_conflicts or unique_retries > UNIQUE_RETRIES:
                            raise
                    elif not retry_conflicts or time.monotonic() > deadline:
                        raise AnnotationStoreError(
                            f"The flag store ({self.location}) kept conflicting with other writers for "
                            f"{RETRY_SECONDS:.0f} s ({error.sqlstate}); try again") from error
                    attempt += 1
                    # jittered backoff, so that writers who collided do not collide again in step
                    time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
                except psycopg.OperationalError as error:
                    if not (conn.closed or conn.broken):  # e.g. a statement timeout, a full disk
                        self._rollback(conn)
                        raise AnnotationStoreError(
                            f"The flag store ({self.location}) could not do this: "
                            f"{self.url.redact(str(error)).strip()}") from None
                    if committing:  # the server may have committed before the connection went
                        raise self._lost(error, "while saving; the change may or may not have been "
                                                "saved (reload to see)") from None
                    if reconnected:
                        raise self._lost(error, "twice in a row") from None
                    reconnected = True  # the server rolled back the open transaction: run it again
                except BaseException:
                    self._rollback(conn)
                    raise
                finally:
                    self._in_transaction = False

    @staticmethod
    def _rollback(conn: psycopg.Connection) -> None:
        try:
            if not (conn.closed or conn.broken) and conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.OperationalError:
            pass  # the connection went: the server rolls back by itself, and it is reopened next call

    def write(self, body: Callable[[_Connection], T]) -> T:
        return self._transaction("BEGIN ISOLATION LEVEL SERIALIZABLE", body, retry_conflicts=True)

    def migrate(self, body: Callable[[_Connection], T]) -> T:
        """``body`` holding the migration lock. READ COMMITTED, not SERIALIZABLE: a transaction that
        waited for the lock must see the schema as the process before it left it."""
        def locked(conn: _Connection) -> T:
            conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            return body(conn)
        return self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED", locked, retry_conflicts=True)

    def read_together(self, body: Callable[[], T]) -> T:
        """``body()``'s reads in one snapshot of the database."""
        with self.lock:
            if self._in_transaction:
                return body()
            return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                     lambda conn: body(), retry_conflicts=False)

    def read(self, sql: str, params: Iterable = ()) -> list[tuple]:
        params = tuple(params)
        with self.lock:
            if self._in_transaction:  # inside read_together: no reconnecting halfway through a snapshot
                return _Connection(self._connection()).execute(sql, params).fetchall()
            return self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY",
                                     lambda conn: conn.execute(sql, params).fetchall(),
                                     retry_conflicts=False)

    def prepare(self) -> None:
        """Nothing to set per connection: durability is the server's (synchronous_commit)."""

    def schema_version(self, conn: _Connection | None = None) -> int:
        def version(c: _Connection) -> int:
            # pg_tables, not to_regclass(): a process that waited for the migration lock may still
            # hold a cached "no such table" from before; the catalog read afresh cannot be stale.
            exists = c.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = ? "
                               "AND schemaname = current_schema())", (VERSION_TABLE,)).fetchone()[0]
            if not exists:
                return 0  # a database the store has never written to
            row = c.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
            return int(row[0] or 0)
        if conn is not None:
            return version(conn)
        return self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", version,
                                 retry_conflicts=False)

    @staticmethod
    def set_schema_version(conn: _Connection, version: int) -> None:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
        conn.execute(f"DELETE FROM {VERSION_TABLE}")
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (int(version),))

    @staticmethod
    def after_import(conn: _Connection) -> None:
        """Move the id sequences past the imported ids (explicit ids do not advance them)."""
        for table in ("verdicts", "history"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"coalesce(max(id), 0) + 1, false) FROM {table}")

    def storage_problems(self) -> list[str]:
        """None checked here: pages and indexes are the server's (data checksums, pg_amcheck)."""
        return []

