"""``python -m lrclr predict`` on a folder mixing DICOMs, NIH PNGs and a broken file."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys

import pytest
import torch

from lrclr.model.config import LRCLRConfig, TowerConfig, tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.batch.prediction_csv import predict_rows, write_csv
from lrclr.batch.sources import collect_image_files
from lrclr.reports.text import MAX_REPORT_CHARS, decode_report
from tests.support.paths import REPO_ROOT, TEST_DATA, require_shared


@pytest.fixture(scope="module")
def default_tower_model(tmp_path_factory):
    """The default towers (pretrained, from their packages) with untrained heads: the real load path."""
    torch.manual_seed(0)
    config = LRCLRConfig(
        image_tower=TowerConfig("efficientnet-lite0", store_weights=False),
        text_tower=TowerConfig("minilm-l6", store_weights=False),
    )
    folder = tmp_path_factory.mktemp("model") / "untrained-default-towers"
    LRCLRModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def mixed_folder(tmp_path):
    nih = require_shared("nih-cxr14-sample/images")
    folder = tmp_path / "study"
    folder.mkdir()
    for name in ("siim_pneumothorax_example.dcm", "monochrome1_example.dcm", "truncated_siim_20k.dcm"):
        shutil.copy(TEST_DATA / name, folder / name)
    for name in sorted(p.name for p in nih.iterdir())[:5]:
        shutil.copy(nih / name, folder / name)
    (folder / "00000075_000.txt").write_text("Mild cardiomegaly. No pleural effusion.", encoding="utf-8")
    return folder


@pytest.mark.shared_data
def test_cli_writes_one_row_per_image_and_reports_the_bad_file(default_tower_model, mixed_folder, tmp_path):
    out = tmp_path / "predictions.csv"
    findings = "Cardiomegaly,Effusion,pleural thickening"
    result = subprocess.run(
        [sys.executable, "-m", "lrclr", "predict", str(mixed_folder), "--model", str(default_tower_model),
         "--findings", findings, "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(out, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == ["image", "Cardiomegaly", "Effusion", "pleural thickening", "not a chest film because", "error"]
    assert len(rows) == 8  # the .txt report is not an image row
    assert [row["image"] for row in rows] == sorted(p.name for p in mixed_folder.iterdir() if p.suffix != ".txt")
    by_name = {row["image"]: row for row in rows}
    bad = by_name["truncated_siim_20k.dcm"]
    assert "truncated or damaged" in bad["error"] and bad["Cardiomegaly"] == ""
    good = [row for row in rows if row["image"] != "truncated_siim_20k.dcm"]
    assert len(good) == 7
    for row in good:
        assert row["error"] == ""
        assert all(0.0 < float(row[f]) < 1.0 for f in findings.split(","))
    assert "7 scored, 1 failed" in result.stderr


def test_cli_exit_code_is_1_when_nothing_could_be_scored(default_tower_model, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(TEST_DATA / "notes.png", folder / "notes.png")
    shutil.copy(TEST_DATA / "empty.png", folder / "empty.png")
    result = subprocess.run(
        [sys.executable, "-m", "lrclr", "predict", str(folder), "--model", str(default_tower_model), "--out", "-"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "empty.png: the file is empty" in result.stdout and "0 scored, 2 failed" in result.stderr


def test_cli_missing_model_is_a_clear_message_not_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lrclr", "predict", str(TEST_DATA), "--model", str(tmp_path / "nope"), "--out", "-"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_report_labels_join_the_row_when_a_report_is_present(tmp_path):
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config()).eval()
    shutil.copy(TEST_DATA / "nih_00000075_128_gray8.png", tmp_path / "case1.png")
    (tmp_path / "case1.txt").write_bytes("Cardiomegaly. No pleural effusion. Caf\xe9.".encode("cp1252"))
    files = collect_image_files([tmp_path])
    assert [f.name for f in files] == ["case1.png"]
    out = io.StringIO()
    findings = ["Cardiomegaly", "Effusion", "Nodule"]
    scored, failed = write_csv(predict_rows(model, files, findings, tmp_path), out, findings, with_reports=True)
    assert (scored, failed) == (1, 0)
    header, row = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[-6:] == ["report: Cardiomegaly", "report: Effusion", "report: Nodule", "report not read because",
                           "not a chest film because", "error"]
    assert row[-6:-2] == ["1", "0", "", ""] and row[-1] == ""
    assert row[-2] == ""  # a real radiograph and a model card without a reference: the gate passes it


def test_a_report_over_the_length_limit_is_named_and_not_read(tmp_path):
    """One limit everywhere: the row is scored, its report columns are empty and say why."""
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config()).eval()
    for name in ("long", "huge"):
        shutil.copy(TEST_DATA / "nih_00000075_128_gray8.png", tmp_path / f"{name}.png")
    (tmp_path / "long.txt").write_text("Cardiomegaly " * (MAX_REPORT_CHARS // 13 + 1))
    (tmp_path / "huge.txt").write_text("x" * (4 * MAX_REPORT_CHARS + 1))
    out = io.StringIO()
    findings = ["Cardiomegaly"]
    scored, failed = write_csv(predict_rows(model, collect_image_files([tmp_path]), findings, tmp_path), out,
                               findings, with_reports=True)
    assert (scored, failed) == (2, 0)
    header, huge, long = list(csv.reader(io.StringIO(out.getvalue())))
    assert huge[0] == "huge.png" and "more than a 20,000-character report can take" in huge[3] and huge[2] == ""
    assert long[0] == "long.png" and "more than the 20,000 read" in long[3] and long[2] == ""
    assert float(long[1]) > 0  # the image is still scored


def test_report_decoding_tolerates_odd_encodings():
    assert decode_report("\ufeffNo effusion.".encode("utf-8")) == "No effusion."
    assert decode_report("Caf\xe9 \u2013 ok".encode("cp1252")) == "Caf\xe9 \u2013 ok"
    assert decode_report(b"\x81\x8d\x8f") == "\x81\x8d\x8f"  # undefined in cp1252: latin-1 never fails
