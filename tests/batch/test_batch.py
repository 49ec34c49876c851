"""Streaming batch scoring (lrclr.batch.scoring): folders and ZIP archives, per-file errors that never stop a
batch, ZIP safety, cancel between chunks, and CSV bytes equal to ``python -m lrclr predict``'s."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lrclr.batch.scoring import BatchRun, EtaEstimator, format_duration, score_chunk

from lrclr.batch.sources import BatchInputError, FolderSource, ZipSource, open_source
from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.batch.prediction_csv import write_csv
from tests.support.paths import REPO_ROOT, TEST_DATA

FINDINGS = ["Cardiomegaly", "Effusion", "pleural thickening"]
GOOD = ("nih_00000075_128_gray8.png", "nih_00000075_128_gray16.png", "nih_00000075_128_rgba.png",
        "siim_pneumothorax_example.dcm", "monochrome1_example.dcm")
BAD = {"empty.png": "the file is empty", "notes.png": "not a PNG, JPEG or DICOM",
       "truncated_siim_20k.dcm": "truncated or damaged"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LRCLRModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def model_folder(model, tmp_path_factory):
    return model.save_pretrained(tmp_path_factory.mktemp("tiny") / "tiny-model")


@pytest.fixture
def study(tmp_path):
    """A flat folder of 5 readable images (PNG 8/16-bit, RGBA, two DICOMs) and 3 broken files."""
    folder = tmp_path / "study"
    folder.mkdir()
    for name in (*GOOD, *BAD):
        shutil.copy(TEST_DATA / name, folder / name)
    return folder


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _results(run: BatchRun) -> list:
    return [result for chunk in run for result in chunk]


def _cli_csv(paths, model_folder, tmp_path, *extra) -> bytes:
    out = tmp_path / "cli.csv"
    result = subprocess.run(
        [sys.executable, "-m", "lrclr", "predict", *map(str, paths), "--model", str(model_folder),
         "--findings", ",".join(FINDINGS), "--device", "cpu", "--out", str(out), *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def _page_csv(run: BatchRun) -> bytes:
    """What the Batch page offers for download: its kept rows through the CLI's writer."""
    rows = [result.row for result in _results(run)]
    buffer = io.StringIO(newline="")
    write_csv(rows, buffer, run.findings, run.source.with_reports)
    return buffer.getvalue().encode("utf-8")


def test_a_folder_streams_in_chunks_with_one_result_per_file_and_errors_listed(model, study):
    run = BatchRun(model, FolderSource.from_paths([study]), FINDINGS, batch_size=3, thumbnail_px=32)
    chunks = list(run)
    assert [len(c) for c in chunks] == [3, 3, 2]
    results = [r for c in chunks for r in c]
    assert [r.row.image for r in results] == sorted(p.name for p in study.iterdir())
    errors = {r.row.image: r.row.error for r in results if r.row.error}
    assert set(errors) == set(BAD)
    for name, reason in BAD.items():
        assert errors[name].startswith(name) and reason in errors[name]
    for result in results:
        if not result.row.error:
            assert set(result.row.probabilities) == set(FINDINGS)
            assert all(0 < p < 1 for p in result.row.probabilities.values())
            assert result.thumbnail.startswith("data:image/jpeg;base64,")
    assert (run.scored, run.failed, run.position, run.finished) == (5, 3, 8, True)
    assert run.progress_text() == "8 / 8 · done"


def test_cancel_stops_between_chunks(model, study):
    run = BatchRun(model, FolderSource.from_paths([study]), FINDINGS, batch_size=2)
    seen = []
    for chunk in run:
        seen += chunk
        run.cancel()  # what the page's Cancel button does
    assert len(seen) == 2 and run.position == 2 and run.cancelled and not run.active
    assert run.step() == []  # a cancelled run scores nothing more


def test_a_model_failure_on_one_image_does_not_abort_the_batch(study):
    from lrclr.model.letterbox import letterbox_pixels

    source = FolderSource.from_paths([study])
    by_name = {item.name: item for item in source.inputs}
    sixteen_bit = letterbox_pixels(source.load(by_name["nih_00000075_128_gray16.png"]).pixels, 64)[0]
    assert not torch.equal(sixteen_bit, letterbox_pixels(source.load(by_name["nih_00000075_128_gray8.png"]).pixels, 64)[0])

    class Picky:
        """Fails any batch holding the 16-bit PNG (as if that image broke the model), else scores 0.5."""
        device_info = SimpleNamespace(device=torch.device("cpu"))
        model_card: dict = {}
        config = SimpleNamespace(image_size=64)

        def zero_shot_letterboxed(self, pixels, letterboxes, findings):
            if any(torch.equal(image, sixteen_bit) for image in pixels):
                raise RuntimeError("CUDA out of memory\nmore details")
            return SimpleNamespace(probabilities=np.full((len(pixels), len(findings)), 0.5),
                                   image_embeddings=np.zeros((len(pixels), 8)))

    source = FolderSource.from_paths([study])
    results = score_chunk(Picky(), source, source.inputs, FINDINGS)
    failed = {r.row.image: r.row.error for r in results if r.row.error}
    assert failed.pop("nih_00000075_128_gray16.png").endswith("the model could not score this image (CUDA out of memory)")
    assert set(failed) == set(BAD)
    assert sum(1 for r in results if r.row.probabilities == dict.fromkeys(FINDINGS, 0.5)) == 4


@pytest.mark.slow  # 29 s on 2 busy cores
def test_the_page_path_and_the_cli_write_the_same_csv_bytes_for_a_folder_and_a_zip(model, model_folder, study, tmp_path):
    page = _page_csv(BatchRun(model, FolderSource.from_paths([study]), FINDINGS, thumbnail_px=64))
    cli = _cli_csv([study], model_folder, tmp_path)
    assert page == cli
    assert cli.count(b"\r\n") == 9
    assert cli.startswith(b"image,Cardiomegaly,Effusion,pleural thickening,not a chest film because,error\r\n")
    archive = tmp_path / "study.zip"
    archive.write_bytes(_zip_bytes({p.name: p.read_bytes() for p in sorted(study.iterdir())}))
    zipped = _page_csv(BatchRun(model, ZipSource(io.BytesIO(archive.read_bytes())), FINDINGS))
    assert zipped == cli  # same files, same names and order, same scores
    assert _cli_csv([archive], model_folder, tmp_path) == cli


def test_reports_beside_the_images_join_the_rows_in_a_folder_and_a_zip(model, model_folder, tmp_path):
    image = (TEST_DATA / "nih_00000075_128_gray8.png").read_bytes()
    report = "Cardiomegaly. No pleural effusion.".encode("cp1252")
    folder = tmp_path / "with-reports"
    folder.mkdir()
    (folder / "case1.png").write_bytes(image)
    (folder / "case1.txt").write_bytes(report)
    (folder / "case2.png").write_bytes(image)
    page = _page_csv(BatchRun(model, FolderSource.from_paths([folder], reports_dir=folder), FINDINGS))
    assert page == _cli_csv([folder], model_folder, tmp_path, "--reports", str(folder))
    lines = page.decode().splitlines()
    assert lines[0].endswith("report: Cardiomegaly,report: Effusion,report: pleural thickening,"
                             "report not read because,not a chest film because,error")
    assert lines[1].startswith("case1.png,") and lines[1].endswith(",1,0,,,,")  # a real film: the gate is silent
    assert lines[2].endswith(",,,,,,")  # no report for case2
    zipped = ZipSource(io.BytesIO(_zip_bytes({"a/case1.png": image, "a/case1.txt": report, "b/case1.txt": b"Normal."})))
    assert zipped.with_reports
    row = _results(BatchRun(model, zipped, FINDINGS))[0].row
    assert row.report_labels == {"Cardiomegaly": 1, "Effusion": 0}


def test_zip_members_are_sorted_and_unsafe_ones_are_refused_and_listed(model):
    png = (TEST_DATA / "nih_00000075_128_gray8.png").read_bytes()
    members = {
        "study/b.png": png, "study/a.png": png, "study-2.png": png, "notes/readme.md": b"not an image",
        "__MACOSX/study/._a.png": b"resource fork", "study/.hidden.png": png,
        "../escape.png": png, "/etc/absolute.png": png, "study/../../up.dcm": png,
        "C:/windows/drive.png": png, "big.dcm": (TEST_DATA / "siim_pneumothorax_example.dcm").read_bytes(),
    }
    source = ZipSource(io.BytesIO(_zip_bytes(members)), max_file_bytes=100_000)
    paths = [item.path for item in source.inputs]
    # Sorted by path components, as the CLI sorts a folder: study/ before study-2.png.
    assert paths == ["../escape.png", "/etc/absolute.png", "C:/windows/drive.png", "big.dcm",
                     "study/../../up.dcm", "study/a.png", "study/b.png", "study-2.png"]
    results = _results(BatchRun(model, source, FINDINGS))
    errors = {r.input.path: r.row.error for r in results if r.row.error}
    assert "climbs out of the archive" in errors["../escape.png"]
    assert "climbs out of the archive" in errors["study/../../up.dcm"]
    assert "absolute path" in errors["/etc/absolute.png"] and "absolute path" in errors["C:/windows/drive.png"]
    assert "big.dcm: refused: the member declares 127290 bytes, more than the 100000 bytes allowed" == errors["big.dcm"]
    assert [r.row.image for r in results if not r.row.error] == ["a.png", "b.png", "study-2.png"]


def test_a_member_that_expands_beyond_what_it_declares_is_an_error_not_a_memory_blowup(model):
    """A zip bomb that lies about its size: 8 MB of zeros declared as 1000 bytes."""
    png = (TEST_DATA / "nih_00000075_128_gray8.png").read_bytes()
    data = bytearray(_zip_bytes({"bomb.png": b"\0" * 8_000_000, "ok.png": png}))
    declared = 1000
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)  # local header: uncompressed size
    struct.pack_into("<I", data, central + 24, declared)  # central directory: uncompressed size
    source = ZipSource(io.BytesIO(bytes(data)))
    results = _results(BatchRun(model, source, FINDINGS))
    bomb, ok = results
    assert bomb.row.image == "bomb.png" and "not what the archive declares" in bomb.row.error
    assert not ok.row.error


def test_inputs_that_cannot_be_used_at_all_are_clear_errors(tmp_path):
    with pytest.raises(BatchInputError, match="not a readable ZIP archive"):
        ZipSource(io.BytesIO(b"PK\x03\x04 not really"))
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"a.png": b""}))
    with pytest.raises(BatchInputError, match="must be the only PATH"):
        open_source([archive, tmp_path])
    with pytest.raises(BatchInputError, match="--reports does not apply"):
        open_source([archive], reports_dir=tmp_path)
    assert isinstance(open_source([archive]), ZipSource)


def test_eta_is_the_running_median_per_file_times_the_files_left():
    eta = EtaEstimator()
    assert eta.remaining(10) is None
    eta.add(8.0, 2)  # a slow first chunk (prompt encoding) ...
    eta.add(1.0, 2)
    eta.add(1.2, 2)  # ... does not dominate: median 0.6 s per file
    assert eta.remaining(10) == pytest.approx(6.0)
    assert format_duration(6) == "6 s" and format_duration(65) == "1 min 05 s"
    assert format_duration(3725) == "1 h 02 min"


def test_a_study_that_is_not_a_chest_film_says_why_in_its_row(model, tmp_path):
    from PIL import Image as PILImage

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(TEST_DATA / "nih_00000075_128_gray8.png", folder / "film.png")
    PILImage.new("L", (256, 256), 128).save(folder / "blank.png")
    rows = {r.row.image: r.row for r in _results(BatchRun(model, FolderSource.from_paths([folder]), FINDINGS))}
    assert rows["film.png"].input_check == ""
    assert "blank" in rows["blank.png"].input_check and rows["blank.png"].probabilities  # scored, and flagged
