"""The hostile-input campaign: each odd image and report, in the library, the CLI and the app.

Every case either works or gives a clear message naming the problem; never a traceback, never a
frozen page (AppTest runs have a timeout; the decompression bomb is refused from its header).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from lrclr.errors import ImageReadError
from lrclr.imaging.reading import load_image
from lrclr.reports.text import decode_report
from tests.support.app_pages import as_shown
from tests.support.paths import REPO_ROOT
from tests.support.hostile_inputs import GRAY8, HOSTILE_REPORTS, hostile_images

IMAGES = {case.name: case for case in hostile_images()}


@pytest.mark.parametrize("name", list(IMAGES))
def test_hostile_image_in_the_library(name):
    case = IMAGES[name]
    if case.expect is None:
        assert load_image(case.data, name=name).pixels.size > 0
    else:
        with pytest.raises(ImageReadError) as raised:
            load_image(case.data, name=name)
        assert case.expect in str(raised.value)
        assert "Traceback" not in str(raised.value)


@pytest.fixture(scope="module")
def cli_rows(tmp_path_factory) -> tuple[dict[str, dict], str]:
    """One ``python -m lrclr predict`` run over a folder holding every hostile image."""
    folder = tmp_path_factory.mktemp("hostile-images")
    for case in IMAGES.values():
        (folder / case.name).write_bytes(case.data)
    out = folder.parent / "hostile.csv"
    run = subprocess.run([sys.executable, "-m", "lrclr", "predict", str(folder), "--out", str(out)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}, run.stderr


@pytest.mark.parametrize("name", list(IMAGES))
def test_hostile_image_in_the_cli(cli_rows, name):
    rows, stderr = cli_rows
    case, row = IMAGES[name], rows[name]
    assert "Traceback" not in stderr
    if case.expect is None:
        assert row["error"] == "" and 0.0 <= float(row["Effusion"]) <= 1.0
    else:
        assert case.expect in row["error"] and row["Effusion"] == ""


@pytest.fixture
def review(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    monkeypatch.setenv("LRCLR_DATA_DIR", str(tmp_path / "flags"))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    app.radio(key="review-source").set_value("Upload").run()
    return app


@pytest.mark.parametrize("name", list(IMAGES))
def test_hostile_image_in_the_app(review, name):
    case = IMAGES[name]
    review.file_uploader(key="review-image").set_value((name, case.data, "application/octet-stream")).run()
    assert not review.exception
    if case.expect is None:
        assert len(review.dataframe[0].value) == 14
    else:
        assert [e.value for e in review.error if case.expect in as_shown(e.value)], [e.value for e in review.error]
        assert not review.dataframe


@pytest.mark.parametrize("name", list(HOSTILE_REPORTS))
def test_hostile_report_in_the_app(review, name):
    review.file_uploader(key="review-image").set_value(("scan.png", GRAY8.read_bytes(), "image/png")).run()
    review.file_uploader(key="review-report-file").set_value(
        (f"{name}.txt", HOSTILE_REPORTS[name], "text/plain")).run()
    assert not review.exception
    report_box = next(t for t in review.text_area if t.label == "Report")
    assert len(review.dataframe[0].value) == 14
    if name == "100k-characters":  # over the limit: not read, and the reason shown
        assert report_box.value == ""
        assert any("more than a 20,000-character report can take" in as_shown(e.value) for e in review.error)
        return
    assert report_box.value == decode_report(HOSTILE_REPORTS[name])  # shown exactly as decoded, as text
    if name == "15k-characters":
        assert any("longer than the model reads" in w.value for w in review.warning)
    review.session_state["review-tab"] = "Report words"  # its word buttons carry the report's text
    review.run()
    assert not review.exception


def test_hostile_reports_in_the_cli(tmp_path):
    images, reports = tmp_path / "images", tmp_path / "reports"
    images.mkdir()
    reports.mkdir()
    for name, data in HOSTILE_REPORTS.items():
        shutil.copy(GRAY8, images / f"{name}.png")
        (reports / f"{name}.txt").write_bytes(data)
    out = tmp_path / "out.csv"
    run = subprocess.run([sys.executable, "-m", "lrclr", "predict", str(images), "--reports", str(reports),
                          "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == sorted(f"{name}.png" for name in HOSTILE_REPORTS)
    assert all(row["error"] == "" for row in rows.values())
    # The long report states both findings; the labeler reads them (1 = present).
    assert rows["15k-characters.png"]["report: Cardiomegaly"] == "1"
    assert rows["15k-characters.png"]["report: Effusion"] == "1"
    # Over the limit: the image is scored, the report named as not read.
    over = rows["100k-characters.png"]
    assert over["report: Cardiomegaly"] == "" and "not read" in over["report not read because"]
    assert over["Cardiomegaly"] != ""
