"""The flag store's two engines: the same schema on both, and what only PostgreSQL has to get right
(URLs, passwords kept out of messages, an unreachable server, a dropped connection).

The store's behaviour itself is tested on both engines in test_annotations.py.
"""

from __future__ import annotations

import pytest

from lrclr.annotations.postgres_engine import VERSION_TABLE, StoreURL
from lrclr.annotations.schema import SCHEMA_VERSION
from lrclr.annotations.store import AnnotationStore
from lrclr.errors import AnnotationStoreError
from tests.support.servers import free_port
from tests.support.stores import make_pair, raw_sql

SECRET = "hunter2-not-for-logs"
# SQLite's declared types and the PostgreSQL types that hold the same values
SAME_TYPE = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text"}


def _sqlite_layout(path) -> dict:
    with raw_sql(path) as conn:
        tables = {}
        for table in ("verdicts", "history"):
            tables[table] = [(name, SAME_TYPE[kind], bool(notnull) or bool(pk))
                             for _, name, kind, notnull, _, pk in conn.execute(f"PRAGMA table_info({table})")]
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")}
        unique = [tuple(row[2] for row in conn.execute(f"PRAGMA index_info('{name}')"))
                  for _, name, is_unique, origin, _ in conn.execute("PRAGMA index_list(verdicts)")
                  if is_unique and origin == "u"]
        triggers = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    return {"tables": tables, "indexes": indexes, "unique": unique, "triggers": triggers, "version": version}


def _postgres_layout(url) -> dict:
    with raw_sql(url) as conn:
        tables = {}
        for table in ("verdicts", "history"):
            tables[table] = [(name, kind, nullable == "NO") for name, kind, nullable in conn.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]
        indexes = {row[0] for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN "
            "('verdicts', 'history') AND indexname NOT IN (SELECT conname FROM pg_constraint)")}
        unique = [tuple(row[0]) for row in conn.execute(
            "SELECT array(SELECT attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i) "
            "JOIN pg_attribute ON attrelid = c.conrelid AND attnum = k.n ORDER BY k.i) "
            "FROM pg_constraint AS c WHERE c.conrelid = 'verdicts'::regclass AND c.contype = 'u'")]
        triggers = {row[0] for row in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'history'::regclass AND NOT tgisinternal")}
        version = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()[0]
    return {"tables": tables, "indexes": indexes, "unique": unique, "triggers": triggers, "version": version}


def test_both_engines_build_the_same_schema(tmp_path, postgres_server):
    """Same columns in the same order with the same types and NOT NULLs, same unique key, indexes,
    append-only triggers and schema version: a version number means one layout everywhere."""
    path, url = tmp_path / "annotations.sqlite3", postgres_server.new_database()
    AnnotationStore(path).close()
    AnnotationStore(url).close()
    sqlite, postgres = _sqlite_layout(path), _postgres_layout(url)
    assert sqlite["tables"] == postgres["tables"]
    assert sqlite["unique"] == postgres["unique"] and len(sqlite["unique"]) == 1
    assert sqlite["indexes"] == postgres["indexes"] and len(sqlite["indexes"]) == 4
    assert sqlite["triggers"] == {"history_no_update", "history_no_delete"}
    assert postgres["triggers"] == sqlite["triggers"] | {"history_no_truncate"}  # PostgreSQL also has TRUNCATE
    assert sqlite["version"] == postgres["version"] == SCHEMA_VERSION


def test_the_url_is_checked_with_a_clear_message_that_never_shows_the_password():
    for url, message in [
        (f"mysql://reader:{SECRET}@db/flags", "not a PostgreSQL URL"),
        (f"postgresql://reader:{SECRET}@db.example.org", "names no database"),
        (f"postgresql://reader:{SECRET}@[::1/flags", "not valid"),  # libpq repeats a URL it cannot parse
        (f"postgresql://reader:{SECRET}@db/flags?nosuchoption=1", "not valid"),
    ]:
        with pytest.raises(AnnotationStoreError, match=message) as caught:
            AnnotationStore(url)
        assert SECRET not in str(caught.value)
    described = StoreURL(f"postgresql://reader:{SECRET}@db.example.org:5433/flags")
    assert described.description == "PostgreSQL database flags on db.example.org:5433 as reader"
    assert SECRET not in repr(described)


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    port = free_port()  # nothing listens there
    with pytest.raises(AnnotationStoreError) as caught:
        AnnotationStore(f"postgresql://reader:{SECRET}@127.0.0.1:{port}/flags")
    message = str(caught.value)
    assert message.startswith(f"Cannot reach the flag store (PostgreSQL database flags on 127.0.0.1:{port} as reader)")
    assert "Connection refused" in message and SECRET not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no driver message chained


def test_the_password_comes_from_libpq_and_a_wrong_one_is_named_but_not_shown(postgres_server, monkeypatch):
    url = postgres_server.new_database()
    assert "@" in url and ":" not in url.split("//")[1].split("@")[0]  # no password in the URL
    with AnnotationStore(url) as store:  # it came from PGPASSFILE
        store.record("alice", make_pair(0), "bad match")
    wrong = url.replace("lrclr_test@", f"lrclr_test:{SECRET}@")
    with pytest.raises(AnnotationStoreError, match="password authentication failed") as caught:
        AnnotationStore(wrong)
    assert SECRET not in str(caught.value)
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    with AnnotationStore(url) as store:
        assert len(store.verdicts()) == 1


def test_a_missing_database_is_a_clear_error(postgres_server):
    with pytest.raises(AnnotationStoreError, match='database "no_such_flags" does not exist'):
        AnnotationStore(postgres_server.url("no_such_flags"))


def test_a_database_with_other_tables_of_those_names_is_refused_unchanged(postgres_server):
    url = postgres_server.new_database()
    with raw_sql(url) as conn:
        conn.execute("CREATE TABLE history (note TEXT)")  # another application's table
    with pytest.raises(AnnotationStoreError, match='relation "history" already exists'):
        AnnotationStore(url)
    with raw_sql(url) as conn:  # the migration was one transaction: nothing of it is left
        assert conn.execute("SELECT to_regclass('verdicts'), to_regclass('lrclr_schema_version')").fetchone() == (
            None, None)


def _terminate_store_sessions(url: str) -> int:
    """What a server restart or an idle timeout does to the store's connection."""
    with raw_sql(url) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'lrclr-review' AND datname = current_database()").fetchall())


def test_a_connection_the_server_dropped_is_reopened(postgres_server):
    url = postgres_server.new_database()
    store = AnnotationStore(url)
    store.record("alice", make_pair(0), "bad match")
    assert _terminate_store_sessions(url) == 1
    assert [v.verdict for v in store.verdicts()] == ["bad match"]  # a read reconnects
    assert _terminate_store_sessions(url) == 1
    store.record("alice", make_pair(1), "good match")  # and so does a write, which then runs whole
    assert _terminate_store_sessions(url) == 1
    verdicts, history = store.snapshot()
    assert len(verdicts) == len(history) == 2 and store.integrity_check() == "ok"
    store.close()
    with pytest.raises(AnnotationStoreError, match="is closed"):
        store.verdicts()


def test_replicas_opening_a_new_database_together_migrate_it_once(postgres_server):
    """Eight stores (as eight app servers starting at once) on one empty database: the migration
    lock lets one create the tables and the rest find them."""
    import threading

    url, errors, stores = postgres_server.new_database(), [], []
    barrier = threading.Barrier(8)

    def open_store():
        barrier.wait()
        try:
            stores.append(AnnotationStore(url))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(stores) == 8
    assert {store.schema_version for store in stores} == {SCHEMA_VERSION}
    with raw_sql(url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {VERSION_TABLE}").fetchone() == (1,)
    for store in stores:
        store.close()

