"""What every benchmark writes beside its numbers: the commit measured, and the JSON result."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """The checkout's short commit; ``LRCLR_COMMIT`` names it where the code was copied without .git."""
    if os.environ.get("LRCLR_COMMIT"):
        return os.environ["LRCLR_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=REPO_ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def emit(result: dict, out_json: Path | None) -> None:
    """Print the result and, when asked, write it to ``out_json``."""
    text = json.dumps(result, indent=2)
    print(text)
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(text + "\n", encoding="utf-8")


def torch_run_header(module: str, argv: list[str] | None) -> dict:
    """The fields a torch benchmark's JSON opens with: its exact command, the machine, date and commit."""
    import torch

    return {
        "command": f"python -m benchmarks.{module} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"), "commit": git_commit(),
    }
