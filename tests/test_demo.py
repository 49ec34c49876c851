"""The bundled demo gallery (assets/demo): complete, loadable, honest about its sources, and
reproducible from the shared data by ``python -m train make-demo``."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from lrclr.bundled import DEFAULT_DEMO_DIR
from lrclr.demo import DemoGalleryError, load_gallery
from lrclr.errors import LRCLRError
from tests.support.paths import REPO_ROOT, require_shared


@pytest.fixture(scope="module")
def gallery():
    return load_gallery()


def _kind(gallery, kind):
    return [case for case in gallery if case.kind == kind]


def test_gallery_has_the_promised_cases(gallery):
    assert len(_kind(gallery, "nih")) >= 8
    dicoms = _kind(gallery, "dicom")
    assert len(dicoms) == 2 and {c.image for c in dicoms} == {"dicom-01-jpeg.dcm", "dicom-02-monochrome1.dcm"}
    assert len(_kind(gallery, "phantom")) >= 2
    assert len({case.id for case in gallery}) == len(gallery)
    assert any("No Finding" in case.labels for case in _kind(gallery, "nih"))


def test_every_image_loads_and_is_small(gallery):
    for case in gallery:
        image = case.load_image()
        height, width = image.pixels.shape
        assert max(height, width) <= 1024, case.id
        assert image.identifiers == {}, case.id  # hidden unless asked for
        data = case.image_bytes()
        assert data[128:132] == b"DICM" if case.kind == "dicom" else data[:4] == b"\x89PNG", case.id


def test_dicoms_decode_jpeg_and_monochrome1(gallery):
    jpeg, mono1 = sorted(_kind(gallery, "dicom"), key=lambda c: c.id)
    plain, inverted = jpeg.load_image(), mono1.load_image()
    assert plain.header["Photometric Interpretation"] == "MONOCHROME2"
    assert inverted.header["Photometric Interpretation"] == "MONOCHROME1"
    assert "JPEG" in plain.header["Transfer Syntax"]
    # The MONOCHROME1 file holds the same stored pixels as the MONOCHROME2 one (only the tag differs),
    # so decoding it correctly gives the inverse image.
    assert np.corrcoef(plain.pixels.ravel(), inverted.pixels.ravel())[0, 1] < -0.99
    assert jpeg.report_text() == "" and jpeg.report is None


def test_phantom_masks_match_their_images(gallery):
    for case in _kind(gallery, "phantom"):
        shape = case.load_image().pixels.shape
        assert case.mask_findings and set(case.mask_findings) == set(case.labels)
        for finding in case.mask_findings:
            mask = case.mask(finding)
            assert mask.dtype == bool and mask.shape == shape and mask.any(), (case.id, finding)
        with pytest.raises(KeyError):
            case.mask("Hernia")


def test_reports_are_real_text_with_provenance(gallery):
    for case in _kind(gallery, "nih") + _kind(gallery, "phantom"):
        text = case.report_text()
        assert text and "XXXX" not in text.upper(), case.id
        assert case.report_provenance, case.id


def test_manifest_carries_no_patient_details():
    manifest = json.loads((DEFAULT_DEMO_DIR / "manifest.json").read_text(encoding="utf-8"))
    keys = {key.lower() for case in manifest["cases"] for key in case}
    assert not keys & {"patient_id", "patient", "age", "sex"}
    assert manifest["version"] == 1 and manifest["generated_by"].startswith("python -m train make-demo")
    assert (DEFAULT_DEMO_DIR / "SOURCES.md").is_file()


def test_altered_file_is_named(tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(DEFAULT_DEMO_DIR, copy)
    target = copy / "nih-01-cardiomegaly.png"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DemoGalleryError, match="nih-01-cardiomegaly.png") as caught:
        load_gallery(copy)
    assert isinstance(caught.value, LRCLRError)
    target.unlink()
    with pytest.raises(DemoGalleryError, match="nih-01-cardiomegaly.png.*missing"):
        load_gallery(copy)


def test_unknown_manifest_version_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text('{"version": 99, "cases": []}', encoding="utf-8")
    with pytest.raises(DemoGalleryError, match="version 99"):
        load_gallery(tmp_path)
    with pytest.raises(DemoGalleryError, match="not found"):
        load_gallery(tmp_path / "absent")


@pytest.mark.shared_data
def test_nih_cases_are_sample_images_the_bundled_models_say_they_trained_on(gallery):
    """The bundled models train on all 421 images of the NIH sample (they are measured by
    cross-validation instead), so the gallery's NIH cases were training images; their cards must say
    so, since the Review page reads that to warn that those scores are not held-out evidence."""
    root = require_shared("nih-cxr14-sample")
    from lrclr.trust.reliability import trained_on_whole_sample
    from lrclr.bundled import DEFAULT_MODEL_DIR

    sample = {path.name for path in (root / "images").iterdir()}
    for case in _kind(gallery, "nih"):
        original = case.source.split()[2]  # "NIH ChestX-ray14 <file> ..."
        assert original in sample, (case.id, original)
    for folder in (DEFAULT_MODEL_DIR, DEFAULT_MODEL_DIR.parent / "baseline-default"):
        card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        assert trained_on_whole_sample(card), folder.name
        assert card["training_data"]["split_sizes"]["train"] == len(sample)


@pytest.mark.shared_data
def test_make_demo_reproduces_the_gallery(tmp_path):
    require_shared("nih-cxr14-sample")
    require_shared("openi-reports/NLMCXR_reports.tgz")
    require_shared("dicom")
    from train.cli import main

    assert main(["make-demo", "--out", str(tmp_path)]) == 0
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == sorted(p.name for p in DEFAULT_DEMO_DIR.iterdir())
    for name in built:
        assert (tmp_path / name).read_bytes() == (DEFAULT_DEMO_DIR / name).read_bytes(), name


def test_make_demo_without_data_says_so(tmp_path, capsys):
    from train.cli import main

    code = main(["make-demo", "--out", str(tmp_path / "out"), "--nih", str(tmp_path / "nowhere")])
    assert code == 2 and "not found" in capsys.readouterr().out


def test_the_assets_folder_is_set_in_one_place_and_a_deployment_can_move_it(tmp_path):
    """LRCLR_ASSETS_DIR moves the bundled models and the demo gallery together (lrclr.bundled)."""
    import subprocess
    import sys

    code = ("from lrclr.bundled import DEFAULT_MODEL_DIR, DEFAULT_DEMO_DIR\n"
            "from lrclr.demo import load_gallery\n"
            "print(DEFAULT_MODEL_DIR); print(DEFAULT_DEMO_DIR)\n"
            "try:\n    load_gallery()\nexcept Exception as error:\n    print(type(error).__name__, error)\n")
    env = {**os.environ, "LRCLR_ASSETS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         cwd=REPO_ROOT).stdout.splitlines()
    assert out[0] == str(tmp_path / "models" / "lrclr-default")
    assert out[1] == str(tmp_path / "demo")
    assert out[2].startswith("DemoGalleryError") and str(tmp_path / "demo") in out[2]


def test_nih_cases_carry_their_pixel_spacing_and_the_others_do_not(gallery):
    for case in gallery:
        if case.kind == "nih":
            row, column = case.pixel_spacing_mm
            assert 0.2 < row < 1.5 and 0.2 < column < 1.5  # a chest film is 35-43 cm across 512 px
            assert case.pixel_spacing_source.startswith("NIH labels: ")
        else:
            assert case.pixel_spacing_mm is None  # DICOMs carry theirs in the header; phantoms have none


@pytest.mark.shared_data
def test_the_nih_spacing_is_the_labels_spacing_scaled_to_the_stored_image(gallery):
    labels = require_shared("nih-cxr14-sample/labels.csv")
    from train.commands.make_demo import nih_spacings

    spacings = nih_spacings(labels)
    for case in _kind(gallery, "nih"):
        name = case.source.split()[2]  # "NIH ChestX-ray14 00005610_000.png (...)"
        mm, original_width, original_height = spacings[name]
        width, height = case.load_image().original_size
        assert case.pixel_spacing_mm == pytest.approx((mm * original_height / height, mm * original_width / width))


def test_gallery_captions_name_the_finding_and_the_source(gallery):
    by_id = {case.id: case for case in gallery}
    assert by_id["nih-08-infiltration-consolidation"].findings_text == "Consolidation, Infiltration, Pleural Thickening"
    assert by_id["nih-10-no-finding"].findings_text == "No finding"
    assert by_id["dicom-01-jpeg"].source_text == "SIIM-ACR DICOM"
    thumbnail = by_id["dicom-02-monochrome1"].thumbnail(96)
    assert max(thumbnail.size) == 96 and thumbnail.mode == "L"
