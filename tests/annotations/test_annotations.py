"""The flag store: concurrent writers, SIGKILL mid-batch, migrations, export round-trips, undo.

Every store test runs on both engines (``store_engine``: a SQLite file, and a database on a real,
throwaway PostgreSQL server, tests/support/postgres.py); where they must differ, the test says why.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lrclr.annotations.exchange import read_csv
from lrclr.annotations.records import VERDICTS, PairKey
from lrclr.annotations.postgres_engine import VERSION_TABLE
from lrclr.annotations.schema import MIGRATIONS, PAIR_COLUMNS, SCHEMA_VERSION
from lrclr.annotations.store import DEFAULT_DB_NAME, AnnotationStore, default_data_dir
from lrclr.errors import AnnotationStoreError, LRCLRError
from tests.support.paths import REPO_ROOT
from tests.support.stores import BATCH, IMAGE, REPORT, make_pair, raw_errors, raw_sql
NASTY = '\'"; DROP TABLE verdicts; -- <script>alert(1)</script> 🫁 ✓ \u202e'


def _worker(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# Each writer opens the store itself (so eight processes may race to create it), waits for "go",
# then records its verdicts one transaction each: the honest case of concurrent sessions.
WRITER = """
import sys, time
from lrclr.annotations.records import VERDICTS
from lrclr.annotations.store import AnnotationStore
from tests.support.stores import make_pair
path, annotator, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = AnnotationStore(path)
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter()
for i in range(n):
    store.record(annotator, make_pair(i), VERDICTS[i % 3], f"comment {i} by {annotator}")
print(f"{time.perf_counter() - start:.3f}", flush=True)
"""


def test_eight_processes_writing_concurrently_lose_nothing(new_store, store_engine):
    path, writers, each = new_store(), 8, 250
    procs = [_worker(WRITER, str(path), f"reader{k}", str(each)) for k in range(writers)]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n", proc.communicate()[1]
    started = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    elapsed = time.perf_counter() - started
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    print(f"{store_engine}: {writers} x {each} single-verdict transactions: {elapsed:.2f} s wall; per writer "
          + ", ".join(out.strip() for out, _ in outputs))

    with AnnotationStore(path) as store:
        verdicts, history = store.snapshot()
        assert store.integrity_check() == "ok"
    assert len(verdicts) == writers * each
    assert {(v.annotator, v.pair.word_index) for v in verdicts} == {
        (f"reader{k}", i) for k in range(writers) for i in range(each)}
    assert all(v.verdict == VERDICTS[v.pair.word_index % 3] and v.revision == 1 for v in verdicts)
    assert len(history) == writers * each and all(h.action == "create" for h in history)
    assert {h.verdict_id for h in history} == {v.id for v in verdicts}
    switches = sum(a.annotator != b.annotator for a, b in zip(history, history[1:]))
    assert switches > writers, "the writers ran one after another, not concurrently"
    if store_engine == "sqlite":  # the file itself, checked without the store
        with raw_sql(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# Several processes change the SAME pairs as the same annotator (one reader in several browser tabs,
# or behind a load balancer): each write reads the current revision and writes the next, so two
# writers interleaving without isolation would write the same revision twice or lose a change.
SAME_PAIRS_WRITER = """
import sys
from lrclr.annotations.records import VERDICTS
from lrclr.annotations.store import AnnotationStore
from tests.support.stores import make_pair
path, k, n, pairs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = AnnotationStore(path)
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    store.record("shared", make_pair(i % pairs), VERDICTS[(k + i) % 3], f"writer {k} change {i}")
print("done", flush=True)
"""


def test_processes_changing_the_same_pairs_lose_no_change(new_store):
    path, writers, each, pairs = new_store(), 4, 60, 5
    procs = [_worker(SAME_PAIRS_WRITER, str(path), str(k), str(each), str(pairs)) for k in range(writers)]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n", proc.communicate()[1]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err

    with AnnotationStore(path) as store:
        verdicts, history = store.snapshot()
        assert store.integrity_check() == "ok"
    assert len(verdicts) == pairs  # one row per pair: no pair created twice
    assert len(history) == writers * each  # every comment is new, so every write is one change
    for verdict in verdicts:
        chain = [h for h in history if h.verdict_id == verdict.id]
        assert [h.revision for h in chain] == list(range(1, len(chain) + 1))
        assert [h.action for h in chain] == ["create"] + ["update"] * (len(chain) - 1)
        for before, after in zip(chain, chain[1:]):  # each change starts from the one before it
            assert (after.previous_verdict, after.previous_comment) == (before.verdict, before.comment)
        assert (verdict.revision, verdict.verdict, verdict.comment) == (
            len(chain), chain[-1].verdict, chain[-1].comment)
    assert len({h.comment for h in history}) == writers * each


# Writes batches until killed. With "stall", the 4th batch stops halfway through its transaction
# (on SQLite after a tiny page cache has spilled its uncommitted pages into the WAL; on PostgreSQL
# with its rows sent to the server, uncommitted) and says so: the kill then lands mid-batch for
# certain; without it, wherever the timing puts it.
KILLED_WRITER = """
import sys, time
from lrclr.annotations.store import AnnotationStore
from tests.support.stores import make_pair, BATCH
store = AnnotationStore(sys.argv[1])
annotator, batch = sys.argv[2], 0
if sys.argv[3] == "stall":
    if store.engine == "sqlite":
        store._engine._conn.execute("PRAGMA cache_size = 2")
    record = store._record
    def stalling(conn, pair, *args):
        if pair.word_index == 3 * BATCH + BATCH // 2:
            print("inside", flush=True)
            time.sleep(60)
        return record(conn, pair, *args)
    store._record = stalling
while True:
    store.record_many([(annotator, make_pair(batch * BATCH + j), "bad match", "x" * 300)
                       for j in range(BATCH)])
    batch += 1
    print(batch, flush=True)
"""


def _open_transaction_has_written(target) -> bool:
    """Whether the store's server session (the killed writer's) is inside a transaction that has
    written rows: PostgreSQL gives a transaction an id on its first write."""
    with raw_sql(target) as conn:
        rows = conn.execute("SELECT state, backend_xid IS NOT NULL FROM pg_stat_activity "
                            "WHERE application_name = 'lrclr-review' AND datname = current_database()").fetchall()
    return rows == [("idle in transaction", True)]


@pytest.mark.parametrize("delay", ["stall", 0.0, 0.003, 0.011])
def test_writer_killed_mid_batch_leaves_whole_transactions(new_store, store_engine, delay):
    path = new_store()
    proc = _worker(KILLED_WRITER, str(path), "killed", str(delay))
    committed = [proc.stdout.readline() for _ in range(3)]
    assert committed == ["1\n", "2\n", "3\n"], proc.stderr.read() if proc.poll() is not None else ""
    if delay == "stall":
        assert proc.stdout.readline() == "inside\n"
        if store_engine == "sqlite":
            assert path.with_name(path.name + "-wal").stat().st_size > 0
        else:
            assert _open_transaction_has_written(path)
    else:
        time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    reported = 3 + len([line for line in proc.stdout.read().split() if line.isdigit()])

    with AnnotationStore(path) as store:
        assert store.integrity_check() == "ok"
        verdicts, history = store.snapshot()
        assert len(verdicts) % BATCH == 0
        assert reported <= len(verdicts) // BATCH <= reported + 1  # +1: committed, not yet printed
        if delay == "stall":
            assert len(verdicts) == 3 * BATCH
        assert sorted(v.pair.word_index for v in verdicts) == list(range(len(verdicts)))
        assert [h.verdict_id for h in history] == [v.id for v in verdicts]
        store.record("after", make_pair(0), "unsure")  # still writable
        assert store.integrity_check() == "ok"


def test_threads_share_one_store(new_store):
    store = AnnotationStore(new_store())
    errors = []

    def write(k):
        try:
            for i in range(40):
                store.record(f"thread{k}", make_pair(i), "good match")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(store.verdicts()) == 160 and len(store.history()) == 160


def _pair_row(pair: PairKey) -> tuple:
    """The pair's values in PAIR_COLUMNS order, written by hand as a v1 writer would have."""
    return (pair.model_id, pair.case_id, pair.image_sha256, pair.report_sha256, pair.word_index,
            pair.word, pair.char_start, pair.char_end, pair.region_rank, pair.cell_row, pair.cell_col,
            *pair.box)


def _set_version_by_hand(conn, engine: str, version: int) -> None:
    """Where each engine keeps the schema version, written without the store."""
    if engine == "sqlite":
        conn.execute(f"PRAGMA user_version = {version}")
    else:
        conn.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL)")
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ({version})")


def _v1_database(target, engine: str, rows: list[tuple]) -> None:
    columns = ("annotator", "created_at", "updated_at", *PAIR_COLUMNS, "verdict")
    mark = "?" if engine == "sqlite" else "%s"
    with raw_sql(target) as conn:
        conn.execute("BEGIN")
        for statement in MIGRATIONS[engine][0]:
            conn.execute(statement)
        _set_version_by_hand(conn, engine, 1)
        for row in rows:
            conn.execute(f"INSERT INTO verdicts ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})", row)
        conn.execute("COMMIT")


def test_migration_from_version_1_keeps_every_row(new_store, store_engine):
    path = new_store()
    rows = []
    for i in range(30):
        pair = make_pair(i, case=f"case{i % 4}")
        stamp = f"2024-05-0{1 + i % 9}T10:00:00.{i:06d}+00:00"
        rows.append((f"old{i % 3}", stamp, stamp, *_pair_row(pair), VERDICTS[i % 3]))
    _v1_database(path, store_engine, rows)

    store = AnnotationStore(path)
    assert store.schema_version == SCHEMA_VERSION == 2
    verdicts = store.verdicts()
    assert len(verdicts) == 30
    for i, v in enumerate(verdicts):
        assert (v.annotator, v.pair, v.verdict) == (f"old{i % 3}", make_pair(i, case=f"case{i % 4}"), VERDICTS[i % 3])
        assert (v.comment, v.revision, v.created_at) == ("", 1, rows[i][1])
    history = store.history()
    assert [(h.verdict_id, h.action, h.verdict, h.at) for h in history] == [
        (v.id, "create", v.verdict, v.created_at) for v in verdicts]
    updated = store.record("old0", verdicts[0].pair, "good match", "changed my mind")
    assert (updated.id, updated.revision, updated.created_at) == (verdicts[0].id, 2, verdicts[0].created_at)
    assert store.integrity_check() == "ok"
    store.close()
    assert AnnotationStore(path).verdicts()[1:] == verdicts[1:]  # opening again migrates nothing


def test_newer_schema_is_refused_and_left_alone(new_store, store_engine):
    path = new_store("future")
    with raw_sql(path) as conn:
        conn.execute("CREATE TABLE verdicts (x INTEGER)")
        _set_version_by_hand(conn, store_engine, 7)
    with pytest.raises(AnnotationStoreError) as caught:
        AnnotationStore(path)
    message = str(caught.value)
    location = str(path) if store_engine == "sqlite" else "flags_"  # the database's name
    assert location in message and "upgrade LRCLR Review" in message and "7" in message
    assert isinstance(caught.value, LRCLRError)
    with raw_sql(path) as conn:
        if store_engine == "sqlite":
            assert conn.execute("PRAGMA user_version").fetchone() == (7,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        else:
            assert conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchall() == [(7,)]
            assert conn.execute("SELECT to_regclass('history')").fetchone() == (None,)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_bytes(b"these are not the flags you are looking for" * 100)
    with pytest.raises(AnnotationStoreError, match="Could not open the annotation store"):
        AnnotationStore(path)


def test_comment_with_quotes_sql_html_and_emoji_is_stored_verbatim(new_store):
    path = new_store()
    store = AnnotationStore(path)
    saved = store.record("Dr. O'Brien", make_pair(1), "bad match", NASTY)
    assert saved.comment == NASTY
    store.close()
    store = AnnotationStore(path)
    (read,) = store.verdicts(annotator="Dr. O'Brien")
    assert read.comment == NASTY and read.annotator == "Dr. O'Brien"
    assert store.history()[0].comment == NASTY
    assert store.verdicts(annotator="x' OR '1'='1") == []
    with raw_sql(path) as conn:
        assert conn.execute("SELECT comment FROM verdicts").fetchall() == [(NASTY,)]


def _fill(store: AnnotationStore) -> None:
    store.record("alice", make_pair(0), "bad match", NASTY)
    store.record("alice", make_pair(0), "good match", "line one\r\nline two")
    store.record_many([("bob", make_pair(i), VERDICTS[i % 3], "=1+1" if i == 2 else "") for i in range(4)])
    store.record("carol", make_pair(5, case="demo-02"), "unsure", "'quoted'")
    store.remove("bob", make_pair(3))
    store.record("bob", make_pair(1), "bad match", "-")
    store.undo_last("bob")
    store.record("dave", make_pair(7), "good match", "@cmd")
    store.undo_last("dave")


def test_json_export_round_trips_into_a_fresh_store(new_store, tmp_path):
    source = AnnotationStore(new_store("a"))
    _fill(source)
    source.export_json(tmp_path / "flags.json")
    fresh = AnnotationStore(new_store("b"))
    assert fresh.import_json(tmp_path / "flags.json") == (len(source.verdicts()), len(source.history()))
    assert fresh.snapshot() == source.snapshot()
    assert fresh.integrity_check() == "ok"
    # ids carry on after the imported ones, and undo keeps working on imported history
    assert fresh.record("erin", make_pair(9), "unsure").id > max(v.id for v in source.verdicts())
    assert fresh.undo_last("alice").verdict == "bad match"

    text = io.StringIO()
    source.export_json(text)
    assert json.loads(text.getvalue())["schema_version"] == SCHEMA_VERSION
    with pytest.raises(AnnotationStoreError, match="empty store"):
        fresh.import_json(io.StringIO(text.getvalue()))


def test_bad_import_changes_nothing(new_store):
    source = AnnotationStore(new_store("a"))
    _fill(source)
    data = io.StringIO()
    source.export_json(data)
    tampered = json.loads(data.getvalue())
    tampered["history"][-1]["action"] = "rewrite"
    fresh = AnnotationStore(new_store("b"))
    with pytest.raises(AnnotationStoreError, match="Cannot import"):
        fresh.import_json(io.StringIO(json.dumps(tampered)))
    assert fresh.snapshot() == ([], [])
    with pytest.raises(AnnotationStoreError, match="lrclr-annotations"):
        fresh.import_json(io.StringIO('{"format": "something else"}'))


def test_csv_export_round_trips_and_is_safe_in_a_spreadsheet(new_store, tmp_path):
    store = AnnotationStore(new_store("a"))
    _fill(store)
    store.export_csv(tmp_path / "verdicts.csv")
    store.export_csv(tmp_path / "history.csv", table="history")
    assert read_csv(tmp_path / "verdicts.csv") == store.verdicts()
    assert read_csv(tmp_path / "history.csv", table="history") == store.history()
    text = (tmp_path / "verdicts.csv").read_text(encoding="utf-8")
    assert "'=1+1" in text and ",=1+1" not in text
    with pytest.raises(AnnotationStoreError, match="unexpected header"):
        read_csv(io.StringIO("a,b\n1,2\n"))


def test_undo_reverts_the_annotators_own_changes_in_order(new_store):
    store = AnnotationStore(new_store())
    assert store.undo_last("alice") is None
    created = store.record("alice", make_pair(0), "bad match", "first")
    store.record("bob", make_pair(0), "good match")
    undone = store.undo_last("alice")
    assert (undone.action, undone.verdict, undone.undoes) == ("undo", None, store.history()[0].id)
    assert store.verdicts(annotator="alice") == [] and len(store.verdicts(annotator="bob")) == 1

    created = store.record("alice", make_pair(0), "bad match", "first")
    store.record("alice", make_pair(0), "good match", "second")
    store.record("alice", make_pair(0), "unsure", "third")
    assert store.undo_last("alice").verdict == "good match"
    (current,) = store.verdicts(annotator="alice")
    assert (current.id, current.verdict, current.comment) == (created.id, "good match", "second")
    assert current.created_at == created.created_at and current.revision == 4
    assert store.undo_last("alice").verdict == "bad match"
    assert store.undo_last("alice").verdict is None and store.verdicts(annotator="alice") == []
    assert store.undo_last("alice") is None  # the first create was already undone

    store.remove("bob", make_pair(0))
    assert store.verdicts(annotator="bob") == []
    assert store.undo_last("bob").verdict == "good match"
    assert store.verdicts(annotator="bob")[0].id == 2  # restored under its old id
    assert [h.action for h in store.history(annotator="bob")] == ["create", "delete", "undo"]


def test_recording_updates_in_place_and_the_same_verdict_is_a_no_op(new_store):
    store = AnnotationStore(new_store())
    first = store.record("alice", make_pair(0), "bad match")
    assert store.record("alice", make_pair(0), "bad match") == first
    second = store.record("alice", make_pair(0), "unsure", "hmm")
    assert (second.id, second.revision, second.created_at) == (first.id, 2, first.created_at)
    assert second.updated_at > first.updated_at
    assert [(h.action, h.previous_verdict, h.verdict) for h in store.history()] == [
        ("create", None, "bad match"), ("update", "bad match", "unsure")]
    assert len(store.verdicts()) == 1


def test_history_is_append_only(new_store, store_engine):
    path = new_store()
    with AnnotationStore(path) as store:
        store.record("alice", make_pair(0), "bad match")
    changes = ["UPDATE history SET verdict = 'good match'", "DELETE FROM history",
               "DELETE FROM history WHERE id = 1"]
    if store_engine == "postgresql":
        changes.append("TRUNCATE history")  # skips row triggers: needs its own
    with raw_sql(path) as conn:
        for change in changes:
            with pytest.raises(raw_errors(path), match="append-only"):
                conn.execute(change)
        assert conn.execute("SELECT count(*) FROM history").fetchone() == (1,)


def test_invalid_input_is_refused_before_anything_is_written(new_store):
    store = AnnotationStore(new_store())
    with pytest.raises(ValueError, match="verdict must be one of"):
        store.record("alice", make_pair(0), "terrible")
    with pytest.raises(ValueError, match="annotator must not be empty"):
        store.record("   ", make_pair(0), "unsure")
    with pytest.raises(ValueError, match="comment is 5001 characters"):
        store.record("alice", make_pair(0), "unsure", "x" * 5001)
    with pytest.raises(ValueError, match="comment contains a NUL character"):  # PostgreSQL's text cannot hold one
        store.record("alice", make_pair(0), "unsure", "a\x00b")
    with pytest.raises(ValueError, match="image_sha256"):
        PairKey("m", "c", "not-a-hash", REPORT, 0, "w", 0, 1, 1, 0, 0, (0, 0, 1, 1))
    with pytest.raises(ValueError, match="char_end"):
        PairKey("m", "c", IMAGE, REPORT, 0, "w", 5, 4, 1, 0, 0, (0, 0, 1, 1))
    with pytest.raises(ValueError, match="box"):
        PairKey("m", "c", IMAGE, REPORT, 0, "w", 0, 1, 1, 0, 0, (0, 0, float("nan"), 1))
    with pytest.raises(ValueError, match="verdict must be one of"):
        store.record_many([("alice", make_pair(0), "bad match"), ("alice", make_pair(1), "nope")])
    assert store.snapshot() == ([], [])
    assert store.record("  alice ", make_pair(0), "unsure").annotator == "alice"


def test_counts_for_the_quality_page(new_store):
    store = AnnotationStore(new_store())
    store.record_many([("alice", make_pair(i, case="c1"), "bad match") for i in range(2)]
                      + [("alice", make_pair(i, case="c2"), "bad match") for i in range(3)]
                      + [("bob", make_pair(0, case="c1"), "good match"),
                         ("bob", make_pair(0, case="c3", model="other"), "unsure")])
    assert store.counts_by_case() == {
        "c2": {"bad match": 3, "good match": 0, "unsure": 0},
        "c1": {"bad match": 2, "good match": 1, "unsure": 0},
        "c3": {"bad match": 0, "good match": 0, "unsure": 1}}
    assert list(store.counts_by_case(model_id="other")) == ["c3"]
    assert store.counts("annotator")["bob"] == {"bad match": 0, "good match": 1, "unsure": 1}
    assert store.counts("word")["word0"]["bad match"] == 2
    (day,) = store.counts("day").values()
    assert sum(day.values()) == 7
    with pytest.raises(ValueError, match="cannot count by"):
        store.counts("patient_name")
    with pytest.raises(ValueError, match="unknown filter"):
        store.verdicts(patient_name="x")


def test_data_dir_and_pair_from_an_explanation(tmp_path, monkeypatch):
    monkeypatch.setenv("LRCLR_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    with AnnotationStore.open() as store:
        assert store.path == tmp_path / "elsewhere" / DEFAULT_DB_NAME and store.path.exists()
    monkeypatch.delenv("LRCLR_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "lrclr-review"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "lrclr-review"

    explain = pytest.importorskip("lrclr.model.explain")
    region = explain.RegionExplanation(2, 0.9, (3, 4), (10.0, 20.0, 30.5, 40.5), ())
    word = explain.WordExplanation(1, "effusion", 12, 20, (0.5, 0.5), None)
    pair = PairKey.from_explanation("m", "demo-01", IMAGE, REPORT, word, region)
    assert (pair.word, pair.char_start, pair.char_end, pair.region_rank) == ("effusion", 12, 20, 2)
    assert (pair.cell_row, pair.cell_col, pair.box) == (3, 4, (10.0, 20.0, 30.5, 40.5))
