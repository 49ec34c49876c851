"""The type checker passes on the library: ``python -m mypy`` as configured in pyproject.toml
([tool.mypy]: lrclr/, check_untyped_defs), so that the README's test command covers it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPO_ROOT

# Cold, mypy takes 45 s to 2 minutes on 2 busy cores (it reads the type information of torch, numpy,
# transformers and the rest) and about 1.7 GB of memory.
pytestmark = pytest.mark.slow


def test_mypy_finds_no_type_errors_in_the_library(tmp_path):
    # A cache of its own: the check is a cold run, whatever an earlier run in the checkout cached.
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"mypy (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout, result.stdout
