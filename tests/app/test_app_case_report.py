"""The Review page's case report downloads, with AppTest on the bundled model."""

from __future__ import annotations

import io
import re

from matplotlib.text import Text
from PIL import Image
from streamlit.testing.v1 import AppTest

from lrclr.display import case_report
from lrclr.imaging.reading import load_image
from tests.support.app_pages import captured_downloads
from tests.support.paths import TEST_DATA

DICOM = TEST_DATA / "siim_pneumothorax_example.dcm"
FILE_NAME = "Doe_John_19010101.dcm"  # a file name that identifies someone: it must stay out of the report


def _open_tab(app: AppTest, name: str) -> AppTest:
    app.session_state["review-tab"] = name
    return app.run()


def _upload_dicom(app: AppTest) -> AppTest:
    app.radio(key="review-source").set_value("Upload").run()
    app.file_uploader(key="review-image").set_value((FILE_NAME, DICOM.read_bytes(), "application/dicom")).run()
    next(t for t in app.text_area if t.label == "Report").set_value("Small left pleural effusion. No pneumothorax.").run()
    assert not app.exception
    return app


def _figure_texts(monkeypatch) -> list[list[str]]:
    """Every text of each case report page drawn: a spy on the real ``build_figure``."""
    drawn, real = [], case_report.build_figure

    def spy(report, raster=True):
        figure = real(report, raster)
        drawn.append([t.get_text() for t in figure.findobj(Text)])
        return figure

    monkeypatch.setattr(case_report, "build_figure", spy)
    return drawn


def test_the_review_page_offers_the_case_report_as_pdf_and_png_without_identifiers(app, monkeypatch):
    downloads, texts = captured_downloads(monkeypatch), _figure_texts(monkeypatch)
    _upload_dicom(app)
    next(c for c in app.checkbox if c.label.startswith("Show patient identifiers")).check().run()
    _open_tab(app, "Report words")
    words = next(p for p in app.pills if p.label.startswith("Report words"))
    words.set_value(3).run()  # "Small left pleural effusion.": word 4 is "effusion"
    _open_tab(app, "Export")
    assert not app.exception
    picker = next(m for m in app.multiselect if m.label.startswith("Maps in the case report"))
    assert picker.value == ["word-3"]  # starts from the word chosen on screen
    pdf = downloads[next(n for n in downloads if n.endswith("-report.pdf"))]()
    png = downloads[next(n for n in downloads if n.endswith("-report.png"))]()
    assert not any(FILE_NAME in name for name in downloads)
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    assert Image.open(io.BytesIO(png)).size == (1240, 1753)
    assert len(texts) == 2
    page = " ".join(texts[0])  # a wrapped caption reads whole again
    assert "the word 'effusion' (word 4)" in page and case_report.NOT_A_MEDICAL_DEVICE in page
    assert "Effusion" in page and "lrclr-default" in page
    identifiers = [v for v in load_image(DICOM, include_identifiers=True).identifiers.values() if len(v) >= 6]
    assert identifiers  # the fixture does carry them, and the page was showing them
    for value in [*identifiers, FILE_NAME, "Doe_John"]:
        assert value not in page and value.encode() not in pdf and value.encode() not in png
    assert "Small left pleural effusion" not in page  # the report's text only when asked for

