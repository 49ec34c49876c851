"""The Review page's flows with Streamlit's AppTest, on the bundled model and the bundled demo cases."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lrclr.demo import load_gallery
from lrclr.imaging.reading import load_image
from lrclr.trust.case_findings import sha256_hex
from tests.support.app_pages import as_shown
from tests.support.paths import TEST_DATA

DICOM = TEST_DATA / "siim_pneumothorax_example.dcm"
PATIENT_ID = "16d7f894-55d7-4d95-8957-d18987f0e981"  # PatientName/PatientID in the bundled DICOMs


def _demo(kind: str):
    return next(case for case in load_gallery() if case.kind == kind)


def _upload(app: AppTest, name: str, data: bytes, report: str | None = None) -> AppTest:
    app.radio(key="review-source").set_value("Upload").run()
    app.file_uploader(key="review-image").set_value((name, data, "application/octet-stream")).run()
    if report is not None:
        next(t for t in app.text_area if t.label == "Report").set_value(report).run()
    assert not app.exception
    return app


def _open_tab(app: AppTest, name: str) -> AppTest:
    """Choose a Review tab (only the open tab is drawn); AppTest has no tab clicks."""
    app.session_state["review-tab"] = name
    return app.run()


def _pills(app: AppTest, label_start: str):
    return next(p for p in app.pills if p.label.startswith(label_start))


def _all_text(app: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "text") for e in getattr(app, kind)]
    parts += [str(table.value) for table in app.table] + [str(frame.value) for frame in app.dataframe]
    return "\n".join(str(p) for p in parts)


def _captions(app: AppTest) -> list[str]:
    """Captions as the reader sees them (the markdown escapes of user text removed)."""
    return [re.sub(r"\\(.)", r"\1", c.value) for c in app.caption]


def _viewer_caption(app: AppTest) -> str:
    return next(c for c in _captions(app) if " px · " in c)


def test_a_demo_case_shows_scores_regions_and_grounds_a_chosen_word(app):
    findings = app.dataframe[0].value
    assert len(findings) == 14 and findings["probability"].between(0, 1).all()
    assert {r.removesuffix(" ≠") for r in findings["report"]} <= {"present", "absent", "uncertain", "not mentioned"}
    assert len(findings["AUC (95% CI)"]) == 14
    assert "no heat map" in _viewer_caption(app)
    assert not app.pills  # only the open tab (Findings) is drawn
    _open_tab(app, "Report words")
    words = _pills(app, "Report words")
    words.set_value(2).run()
    assert not app.exception
    third = f"the word '{words.options[2]}'"
    assert third in _viewer_caption(app)  # named by the word itself, painted or said to be unspecific
    _open_tab(app, "Regions")
    regions = _pills(app, "Regions by rank")
    assert len(regions.options) == 16
    regions.set_value(1).run()
    top_words = app.dataframe[0].value
    assert list(top_words.columns) == ["word", "position", "attention"] and len(top_words) >= 1
    # The word chosen in its (now closed) tab still drives the heatmap.
    assert third in _viewer_caption(app)
    # The caption is the legend of everything drawn at once (issue #19: overlays piled up unexplained).
    assert "cyan box: region 1, chosen in Regions" in _viewer_caption(app)  # the pills' value is the rank
    assert "yellow boxes: the top 16 selected regions, numbered by rank" in _viewer_caption(app)
    _open_tab(app, "Findings")
    assert third in _viewer_caption(app) and len(app.dataframe[0].value) == 14
    _open_tab(app, "Report words")
    assert _pills(app, "Report words").value == 2


def test_every_demo_case_opens(app):
    for case_id in [c.id for c in load_gallery()]:
        app.button(key=f"review-pick-{case_id}").click().run()
        assert not app.exception, case_id
        assert not app.error, (case_id, [e.value for e in app.error])


def test_a_phantom_shows_its_ground_truth_mask_beside_the_model_map(app):
    phantom = _demo("phantom")
    app.button(key=f"review-pick-{phantom.id}").click().run()
    mask_picker = next(s for s in app.selectbox if s.label.startswith("Ground-truth mask"))
    mask_picker.set_value(phantom.mask_findings[0]).run()
    assert not app.exception
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    captions = [c for c in captions if c]  # the gallery's thumbnails have none
    assert captions == ["Model's map", f"Ground truth: {phantom.mask_findings[0]}"]


def test_an_uploaded_png_with_a_pasted_report(app):
    pixels = (np.random.default_rng(0).random((300, 240)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    _upload(app, "scan.png", buffer.getvalue(), "Small right pleural effusion. No pneumothorax.")
    assert "240x300 px" in _viewer_caption(app)
    findings = app.dataframe[0].value.set_index("finding")
    assert findings.loc["Effusion", "report"].startswith("present")
    assert findings.loc["Pneumothorax", "report"].startswith("absent")


@pytest.mark.parametrize("case_id", ["dicom-02-monochrome1", "dicom-01-jpeg"])
def test_uploaded_dicoms_monochrome1_and_jpeg_compressed_hide_identifiers(app, case_id):
    case = next(c for c in load_gallery() if c.id == case_id)
    _upload(app, "study.dcm", case.image_bytes())
    assert "1024x1024 px" in _viewer_caption(app)
    assert not app.error
    text = _all_text(app)
    assert "MONOCHROME" in text  # the header panel is there
    assert PATIENT_ID not in text  # ... without identifiers
    next(c for c in app.checkbox if c.label.startswith("Show patient identifiers")).check().run()
    assert PATIENT_ID in _all_text(app)  # shown only because the user asked


def test_the_monochrome1_demo_decodes_to_the_negative_of_its_monochrome2_twin():
    # The two bundled files hold the same stored pixels, one tagged MONOCHROME1 (see the manifest).
    cases = {c.id: c for c in load_gallery() if c.kind == "dicom"}
    inverted = cases["dicom-02-monochrome1"].load_image().pixels
    plain = cases["dicom-01-jpeg"].load_image().pixels
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)


def test_no_report_still_scores_findings_and_grounds_a_phrase(app):
    dicom = _demo("dicom")
    _upload(app, "study.dcm", dicom.image_bytes(), report="")
    assert len(app.dataframe[0].value) == 14
    assert any("No report: nothing to compare" in c for c in _captions(app))
    _open_tab(app, "Report words")
    assert any("No report words to ground" in i.value for i in app.info)
    _open_tab(app, "Phrase")
    app.text_input(key="phrase-" + next(iter(_case_keys(app)))).set_value("right pneumothorax").run()
    assert not app.exception
    assert "the phrase 'right pneumothorax'" in _viewer_caption(app)


def _case_keys(app: AppTest):
    return [t.key.removeprefix("phrase-") for t in app.text_input if t.key and t.key.startswith("phrase-")]


def test_a_bad_upload_gives_a_clear_message_not_a_traceback(app):
    _upload(app, "notes.png", b"this is a text file, not an image")
    assert not app.exception
    assert "not a PNG, JPEG or DICOM" in as_shown(app.error[0].value)


def test_a_truncated_png_gives_a_clear_message(app):
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, format="PNG")
    _upload(app, "cut.png", buffer.getvalue()[:60])
    assert not app.exception
    assert app.error and "cut.png" in as_shown(app.error[0].value)


def test_a_two_megabyte_pasted_report_is_refused_at_once_and_kept_in_its_box(app):
    """One limit everywhere: the case is scored without the report, the box still holds it."""
    dicom = _demo("dicom")
    huge = "small left pleural effusion no pneumothorax heart size normal " * 33_000  # ~2 MB, no sentence end
    _upload(app, "study.dcm", dicom.image_bytes(), report=huge)
    assert any("the report has 2,0" in e.value and "more than the 20,000 read" in e.value for e in app.error)
    assert next(t for t in app.text_area if t.label == "Report").value == huge
    assert len(app.dataframe[0].value) == 14
    assert any("No report: nothing to compare" in c for c in _captions(app))


def test_an_uploaded_file_name_with_markdown_is_shown_literally_in_the_error_box(app):
    name = "[click](https://evil.example) :red[alarm] $x^2$ ![p](https://evil.example/p.png).png"
    _upload(app, name, b"this is a text file, not an image")
    error = app.error[0].value
    assert as_shown(error).startswith(name + ": ")
    # Every Markdown construct is escaped: no link, image, colour or maths survives.
    assert "](" not in error.replace("\\]\\(", "") and "\\$x^2\\$" in error.replace("\\^", "^")


def test_identifiers_shown_for_one_dicom_are_hidden_again_on_the_next(app):
    """Issue #19: once shown, identifiers stayed on for the next DICOM while the title said hidden."""
    cases = {c.id: c for c in load_gallery() if c.kind == "dicom"}
    _upload(app, "first.dcm", cases["dicom-01-jpeg"].image_bytes())
    next(c for c in app.checkbox if c.label.startswith("Show patient identifiers")).check().run()
    assert PATIENT_ID in _all_text(app)
    assert any("identifiers shown below, for this case only" in e.label for e in app.expander)
    # The same patient's other file (MONOCHROME1): a different image, so a new case.
    app.file_uploader(key="review-image").set_value(("second.dcm", cases["dicom-02-monochrome1"].image_bytes(),
                                                     "application/dicom")).run()
    assert not app.exception
    assert PATIENT_ID not in _all_text(app)
    assert any(e.label == "DICOM header (patient identifiers hidden)" for e in app.expander)


def _viewer_pixels(app: AppTest) -> np.ndarray:
    """The radiograph the viewer sends to the browser (its figure's image trace)."""
    specs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    source = next(s["data"][0]["source"] for s in specs if s["data"] and s["data"][0].get("type") == "image")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("L"), dtype=np.int16)


def test_clahe_changes_the_displayed_radiograph_and_not_the_pixels_the_model_reads(app):
    _upload(app, "study.dcm", DICOM.read_bytes(), "Small left pleural effusion.")
    before = _viewer_pixels(app)
    app.checkbox(key="view-clahe").check().run()
    assert not app.exception
    after = _viewer_pixels(app)
    assert before.shape == after.shape and np.abs(after - before).mean() > 5  # 14.9 grey levels on this film
    # The model encodes the decoded image the page keeps (pages/parts/shared.encode_case): untouched.
    kept = app.session_state["image-cache"][(sha256_hex(DICOM.read_bytes()), False)]
    np.testing.assert_array_equal(kept.pixels, load_image(DICOM).pixels)
