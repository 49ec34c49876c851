"""The one-page case report (lrclr.display.case_report): its format, its contents, literal text, no identifiers."""

from __future__ import annotations

import datetime
import io
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from lrclr.display import case_report
from lrclr.display import figures as viz
from lrclr.display.case_report import CaseReport, MapPanel
from lrclr.display.case_report_layout import MAX_ROWS
from lrclr.model.letterbox import letterbox_geometry
from lrclr.model.explain import Explanation, FindingScore, RegionExplanation, WordExplanation
from lrclr.trust.findings_table import findings_legend, findings_table
from lrclr.imaging.reading import load_image
from lrclr.trust.case_findings import finding_rows, upload_case_id, word_map
from tests.support.paths import TEST_DATA

DICOM = TEST_DATA / "siim_pneumothorax_example.dcm"
CARD = {"metrics": {"cv_seen": {"result": {"findings": [
    {"finding": "Effusion", "auc": 0.72, "ci_low": 0.64, "ci_high": 0.80, "n_positive": 40},
    {"finding": "Mass", "auc": 0.55, "ci_low": 0.47, "ci_high": 0.63, "n_positive": 12}],
    "macro": {"auc": 0.63, "ci_low": 0.6, "ci_high": 0.66}}, "dataset": {"n_samples": 421, "spec": {"kind": "nih"}}}}}
MADE = datetime.datetime(2026, 12, 1, 16, 20, tzinfo=datetime.timezone.utc)


def _explanation(report: str, findings: dict[str, float], size: tuple[int, int]) -> Explanation:
    words, start, results = report.split(), 0, []
    for i, text in enumerate(words):
        start = report.index(text, start)
        similarity = np.zeros((4, 4), dtype=np.float32)
        similarity[1, 2] = 1.0
        results.append(WordExplanation(i, text, start, start + len(text), (0.8, 0.2), similarity))
        start += len(text)
    regions = (RegionExplanation(1, 0.9, (1, 2), (0.5 * size[0], 0.25 * size[1], 0.75 * size[0], 0.5 * size[1]), ()),
               RegionExplanation(2, 0.6, (3, 3), (0.75 * size[0], 0.75 * size[1], size[0], size[1]), ()))
    return Explanation("test-model", report, False, letterbox_geometry(size, 64), (4, 4), tuple(FindingScore(n, p) for n, p in findings.items()),
                       regions, tuple(results))


def _report(pixels: np.ndarray, case_id: str, report: str = "Small $x^2$ effusion.",
            findings: dict[str, float] | None = None, **extra) -> CaseReport:
    """A case report put together as the Review page does, from a decoded image and an explanation."""
    height, width = pixels.shape
    explanation = _explanation(report, findings or {"Effusion": 0.61, "Mass": 0.4, "$y_1$ sign": 0.2}, (width, height))
    base = viz.to_display_rgb(pixels)
    grid = word_map(explanation, 1)
    scale = viz.map_scale(grid, "attention", fixed=False, uniform=0.5)
    overlay = viz.draw_regions(viz.overlay_heatmap(base, grid, explanation.letterbox, 0.5, scale), explanation)
    rows = tuple(finding_rows(explanation, 0.5, CARD))
    panel = MapPanel("the word '$x^2$' (word 2)", viz.overlay_heatmap(base, grid, explanation.letterbox, 0.5, scale), scale)
    return CaseReport(case_id, "test-model", MADE, overlay, "heat map of the word '$x^2$' (word 2)",
                      (scale, "attention (this map)"), rows, tuple(findings_legend(CARD, rows, True)),
                      maps=(panel, MapPanel("the phrase 'left effusion'", base, None, "not painted: it does not "
                                            "depend on the text here")), display="window level 50%, width 100%",
                      **extra)


def _texts(report: CaseReport) -> list[Text]:
    return case_report.build_figure(report).findobj(Text)


def _joined(report: CaseReport) -> str:
    return " ".join(t.get_text() for t in _texts(report))


def _film() -> np.ndarray:
    return load_image(TEST_DATA / "nih_00000075_128_gray8.png").pixels


def test_the_pdf_is_one_a4_page_and_the_png_has_a_fixed_size():
    report = _report(_film(), "nih-02-effusion")
    pdf = case_report.pdf_bytes(report)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    assert re.search(rb"/MediaBox\s*\[\s*0 0 595\.4\d* 841\.6\d*\s*\]", pdf)  # A4 in points
    png = Image.open(io.BytesIO(case_report.png_bytes(report)))
    assert png.format == "PNG" and png.size == (1240, 1753)  # A4 at 150 dpi


def test_a_huge_radiograph_costs_no_more_than_the_page_can_show():
    big = np.random.default_rng(0).random((3000, 2500)).astype(np.float32)
    report = _report(big, "upload-0123456789ab")
    report = CaseReport(**{**report.__dict__, "overlay": Image.fromarray((big * 255).astype(np.uint8)).convert("RGB")})
    assert len(case_report.pdf_bytes(report)) < 6_000_000  # noise does not compress: ~1.1 Mpx at 300 ppi
    assert Image.open(io.BytesIO(case_report.png_bytes(report))).size == (1240, 1753)


def test_user_text_with_dollar_signs_is_drawn_literally():
    report = _report(_film(), "nih-02-effusion")
    figure = case_report.build_figure(report)
    literal = [t for t in figure.findobj(Text) if "$x^2$" in t.get_text()]
    assert literal and all(not t.get_parse_math() and not t.get_usetex() for t in literal)
    assert any("$y_1$ sign" in t.get_text() for t in figure.findobj(Text))  # a typed finding name
    # Drawn as typed: five characters wide, not the two glyphs of x squared.
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    shown = literal[0]
    as_maths = figure.text(0, 0, shown.get_text(), size=shown.get_size())  # what matplotlib does by default
    renderer = canvas.get_renderer()
    assert shown.get_window_extent(renderer).width > as_maths.get_window_extent(renderer).width + 5


def test_the_table_is_the_screens_table():
    report = _report(_film(), "nih-02-effusion")
    texts = [t.get_text() for t in _texts(report)]
    table = findings_table(report.findings)
    for _, row in table.iterrows():
        for cell in (row["finding"], f"{row['probability']:.3f}", row["called"], row["AUC (95% CI)"], row["report"]):
            assert cell in texts
    assert "✗ 0.55 (0.47-0.63), raw" in texts  # Mass: its CI includes 0.5; the card calibrates nothing
    order = [t for t in texts if t in set(table["finding"])]
    assert order == list(table["finding"])  # highest probability first, as on screen
    greyed = {t.get_text(): t.get_color() for t in _texts(report)}
    assert greyed["Mass"] == "#9e9e9e" and greyed["Effusion"] == "black"


def test_the_page_names_the_model_the_date_and_what_it_is_not():
    page = _joined(_report(_film(), "nih-02-effusion", code_version="lrclr 0.1.0 (abc1234)"))
    assert case_report.NOT_A_MEDICAL_DEVICE in page and "test-model" in page and "2026-12-01 16:20 UTC" in page
    assert "lrclr 0.1.0 (abc1234)" in page and "colours span" in page and "not painted" in page


def test_no_identifier_of_a_dicom_reaches_the_report():
    image = load_image(DICOM, include_identifiers=True)
    identifiers = [value for value in image.identifiers.values() if len(value) >= 6]
    assert len(identifiers) >= 5  # name, ID, study date, UIDs: the fixture carries them
    report = _report(image.pixels, upload_case_id(DICOM.read_bytes()))
    page = _joined(report)
    pdf, png = case_report.pdf_bytes(report), case_report.png_bytes(report)
    for value in [*identifiers, DICOM.name]:
        assert value not in page and value.encode() not in pdf and value.encode() not in png


def test_the_report_text_appears_only_when_asked_for():
    report = _report(_film(), "nih-02-effusion", report="Moderate right effusion. Dr Smith informed.")
    assert "Dr Smith" not in _joined(report)
    asked = CaseReport(**{**report.__dict__, "report_text": "Moderate right effusion. Dr Smith informed."})
    assert "Dr Smith informed." in _joined(asked)
    long = CaseReport(**{**report.__dict__, "report_text": "effusion " * 5000})
    assert "the JSON export has it all" in _joined(long)


@pytest.mark.parametrize("count", [1, 30])
def test_many_findings_stay_on_the_page(count):
    findings = {f"finding {i}": i / 40 for i in range(count)}
    report = _report(_film(), "nih-02-effusion", findings=findings)
    page = _joined(report)
    assert (f"… and {count - MAX_ROWS} more finding(s)" in page) == (count > MAX_ROWS)
    figure = case_report.build_figure(report)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for text in figure.findobj(Text):
        if text.get_text().strip():
            box = text.get_window_extent(renderer)
            inside = box.x0 >= 0 and box.x1 <= figure.bbox.width and box.y0 >= 0 and box.y1 <= figure.bbox.height
            assert inside, text.get_text()  # nothing off the page
