"""Shared test fixtures: paths to the optional shared data and to the bundled fixtures, and flag
stores on both engines (a SQLite file, and a database on a throwaway PostgreSQL server); and the
hook by which tests/support/marks.py knows the running test."""

from __future__ import annotations

import os

import pytest
from tests.support import marks
from tests.support.paths import REPO_ROOT, require_shared

# Tests never reach a model hub: the default towers load from their PyPI packages, and HF towers in
# tests come from folders the tests write. Offline mode turns an accidental download into an error.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    """Tells tests/support/marks.py which test is running, through its fixtures' setup too (a
    module-scoped fixture that needs the browser is set up in its first test's protocol)."""
    marks.current = item
    try:
        return (yield)
    finally:
        marks.current = None


@pytest.fixture
def shared_data():
    return require_shared


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session (tests/support/postgres.py), started on first use."""
    from tests.support.postgres import require_postgres, throwaway_cluster

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


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """(playwright's sync API, URL) of one app server per test module, on the bundled model."""
    from tests.support.browser import require_browser, running_app

    sync_api = require_browser()
    with running_app(tmp_path_factory.mktemp("lrclr-data")) as url:
        yield sync_api, url
