"""Where the tests' files are: the repository, the bundled fixtures, and the team's optional shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.marks import require_mark

REPO_ROOT = Path(__file__).resolve().parents[2]

TEST_DATA = Path(__file__).resolve().parents[1] / "data"

# Real data for development lives beside the project on the team's machines; a user's fresh clone
# does not have it, so tests that need it skip with this reason.
SHARED_DATA = Path(os.environ.get("LRCLR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

def require_shared(relative: str) -> Path:
    require_mark("shared_data", f"reads the shared data ({relative})")  # before the skip: on every machine
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (the team's shared data; absent on a fresh clone)")
    return path
