"""Model folders on disk: ``config.json`` + ``model.safetensors`` + ``model_card.json``.

Loading never unpickles. safetensors holds only tensors, so a malicious weights file cannot run
code; pickle-based files (``.pt``, ``.pth``, ``.bin``, ``.pkl``, ``.ckpt``) are refused with an
explanation instead of being opened. Files are written to a temporary name and renamed, so a crash
mid-save never leaves a half-written model that looks complete.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import lrclr
from lrclr.model.config import CONFIG_FILE, LRCLRConfig
from lrclr.errors import ModelLoadError, UnsafeWeightsError

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
HOW_TO_FIX = (
    "A model folder needs config.json and model.safetensors (python -m train export writes one); "
    "pass it with --model DIR or choose it in the app's sidebar."
)


def code_version() -> str:
    """Package version plus the git commit when running from a checkout, for model cards."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "lrclr", "train"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        # Uncommitted changes to the code mean the commit alone does not reproduce this model.
        commit += "+uncommitted changes" if changed else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"lrclr {lrclr.__version__}" + (f" ({commit})" if commit else "")


def _write_atomically(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        # Some writers create private (0600) files; a model folder should be readable like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_folder(
    folder: str | Path,
    config: LRCLRConfig,
    state: dict[str, torch.Tensor],
    model_card: dict[str, Any],
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write a model folder. ``weights_dtype=torch.float16`` halves the size of what git carries."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if weights_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(weights_dtype)
        tensors[name] = tensor.contiguous()
    card = {"code_version": code_version(), "saved": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    card.update(model_card)
    _write_atomically(folder / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    _write_atomically(folder / CONFIG_FILE, lambda p: p.write_text(config.to_json(), encoding="utf-8"))
    _write_card(folder, card)
    return folder


def _write_card(folder: Path, card: dict[str, Any]) -> None:
    _write_atomically(folder / CARD_FILE, lambda p: p.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8"))


def record_metrics(folder: str | Path, key: str, metrics: dict[str, Any]) -> None:
    """Put one evaluation's results into a model folder's card under ``metrics[key]``, atomically;
    the weights and config are not touched."""
    card = _read_card(folder)
    card.setdefault("metrics", {})[key] = metrics
    _write_card(Path(folder), card)


def update_card(folder: str | Path, sections: dict[str, Any]) -> None:
    """Set top-level sections of a model folder's card (e.g. its calibration), atomically."""
    card = _read_card(folder)
    card.update(sections)
    _write_card(Path(folder), card)


def _read_card(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CARD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def check_not_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeWeightsError(
            f"{path}: refusing to load a pickle-based weights file ({path.suffix}); unpickling can run "
            "arbitrary code. Convert it to safetensors on a trusted machine (python -m train export), "
            f"then load the folder. {HOW_TO_FIX}"
        )


def read_folder(folder: str | Path) -> tuple[LRCLRConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Read config, tensors and card; every problem becomes a ModelLoadError naming the path."""
    folder = Path(folder)
    if folder.is_file():
        check_not_pickle(folder)
        raise ModelLoadError(f"{folder} is a file, not a model folder. {HOW_TO_FIX}")
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist. {HOW_TO_FIX}")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        for candidate in sorted(folder.iterdir()):
            check_not_pickle(candidate)
        raise ModelLoadError(f"{folder} has no {WEIGHTS_FILE}. {HOW_TO_FIX}")
    if not (folder / CONFIG_FILE).is_file():
        raise ModelLoadError(f"{folder} has no {CONFIG_FILE}. {HOW_TO_FIX}")
    try:
        config = LRCLRConfig.load(folder)
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise ModelLoadError(f"{folder / CONFIG_FILE} is not a valid LRCLR config: {error}") from error
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelLoadError(f"{weights} is damaged or not a safetensors file ({error}). {HOW_TO_FIX}") from error
    card: dict[str, Any] = {}
    card_path = folder / CARD_FILE
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ModelLoadError(f"{card_path} is not valid JSON: {error}") from error
    return config, state, card
