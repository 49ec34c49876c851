"""Where the bundled models and the demo gallery are: the one place that knows.

In a checkout they sit in the repository's ``assets/`` folder, beside the ``lrclr`` package. A
deployment that keeps them elsewhere (an installed package, a read-only image with the assets
mounted apart) sets ``LRCLR_ASSETS_DIR`` to that folder; nothing else names the path.
"""

from __future__ import annotations

import os
from pathlib import Path

ASSETS_ENV = "LRCLR_ASSETS_DIR"


def assets_dir() -> Path:
    """``$LRCLR_ASSETS_DIR``, else ``assets/`` next to the package (a checkout's layout)."""
    configured = os.environ.get(ASSETS_ENV)
    return Path(configured).expanduser() if configured else Path(__file__).resolve().parents[1] / "assets"


BUNDLED_MODELS_DIR = assets_dir() / "models"
# The model the app and the CLI use unless told otherwise (exported by the training package).
DEFAULT_MODEL_DIR = BUNDLED_MODELS_DIR / "lrclr-default"
BASELINE_MODEL_DIR = BUNDLED_MODELS_DIR / "baseline-default"
DEFAULT_DEMO_DIR = assets_dir() / "demo"
