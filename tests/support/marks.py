"""Markers that say what a test needs, checked where the need shows: a test that starts the browser
(``browser.require_browser``) or reads the shared data (``paths.require_shared``) without its marker
fails, so that ``-m "not browser"`` or ``-m shared_data`` really leaves out or selects every such test.
The markers themselves are registered in pyproject.toml."""

from __future__ import annotations

import pytest

# The test being run (set by tests/conftest.py around each test's setup, call and teardown).
current: pytest.Item | None = None


def require_mark(name: str, need: str) -> None:
    """Fail the current test unless it carries ``@pytest.mark.<name>``; ``need`` says why it should."""
    if current is not None and current.get_closest_marker(name) is None:
        pytest.fail(f"{current.nodeid} {need} but is not marked @pytest.mark.{name}; "
                    f"mark it so that -m {name} selects it", pytrace=False)
