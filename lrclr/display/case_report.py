"""A one-page case report (A4, PDF and PNG) of what the Review page showed, drawn with matplotlib.

The page holds the radiograph with the overlay on screen and its colour bar with the map's real
values, the findings table with each finding's calibrated probability and the card's evidence for
it (the same cells, marks and order as the screen: ``lrclr.trust.findings_table``), the chosen words' or
phrases' maps, the model id, the date and "Not a medical device".

What it never holds: patient identifiers. ``CaseReport`` has no field for a DICOM header, a file
name or a patient's name: the case is named by its id (a demo id, or the upload's hash, as the other
exports name it), and the report's text appears only where the user asked for it, as for the JSON
export. Every string is drawn literally (``escaping.matplotlib_literal``): words and phrases are
user text, and matplotlib would read "$x^2$" as maths.

matplotlib runs on its Agg and PDF canvases directly, never through pyplot, so no GUI backend and no
global figure state is involved (pages render concurrently). The page size and resolution are
fixed, so a report costs the same whatever the image: ``A4_INCHES`` at ``PNG_DPI``, and images are
shrunk by area resampling to what the page can show.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from lrclr.display.case_report_layout import Box, draw_colour_bar, draw_findings, draw_image, draw_lines
from lrclr.escaping import matplotlib_literal
from lrclr.trust.case_findings import FindingRow
from lrclr.display.figures import MapScale

A4_INCHES = (8.27, 11.69)
PNG_DPI = 150  # the PNG is 1240 x 1753 pixels
PDF_IMAGE_PPI = 300  # images in the PDF: print resolution where the source has it
MAX_MAPS = 4
MAX_REPORT_CHARACTERS = 900  # the rest is in the JSON export; the page has a fixed size
NOT_A_MEDICAL_DEVICE = "Not a medical device"
_RC = {"text.usetex": False, "font.family": "DejaVu Sans", "pdf.fonttype": 42, "axes.unicode_minus": True}


@dataclass(frozen=True)
class MapPanel:
    """One word's or phrase's map as the viewer draws it: ``picture`` is the radiograph with the map
    painted, or unpainted with ``note`` saying why (the map does not depend on the text)."""

    caption: str  # e.g. "the word 'effusion' (word 3)"; user text
    picture: Image.Image
    scale: MapScale | None  # None when nothing is painted
    note: str = ""


@dataclass(frozen=True)
class CaseReport:
    """Everything the page shows, and nothing else."""

    case_id: str  # a demo id or "upload-<hash>", never a file name
    model_id: str
    made: datetime.datetime  # UTC
    overlay: Image.Image  # the radiograph as displayed: window/level, CLAHE, heat map, boxes
    overlay_caption: str  # what the overlay shows (the viewer's caption)
    colour_bar: tuple[MapScale, str] | None  # the overlay's map scale and its title, when painted
    findings: tuple[FindingRow, ...]
    legend: tuple[str, ...]  # what the table's marks mean (findings_table.findings_legend)
    greyed: bool = False  # the input check failed: every score is greyed, as on screen
    notes: tuple[str, ...] = ()  # the page's warnings for this case (input check, training images)
    maps: tuple[MapPanel, ...] = ()
    display: str = ""  # the display settings, e.g. "window level 50%, width 100%, CLAHE"
    code_version: str | None = None
    report_text: str | None = None  # only when the user asked for the report's text in exports


def pdf_bytes(report: CaseReport) -> bytes:
    """The report as a one-page PDF."""
    with matplotlib.rc_context(_RC):
        figure = build_figure(report, raster=False)
        buffer = io.BytesIO()
        FigureCanvasPdf(figure).print_pdf(buffer, metadata=_metadata(report, pdf=True))
    return buffer.getvalue()


def png_bytes(report: CaseReport) -> bytes:
    """The report as a PNG of ``A4_INCHES`` at ``PNG_DPI``."""
    with matplotlib.rc_context(_RC):
        figure = build_figure(report, raster=True)
        buffer = io.BytesIO()
        FigureCanvasAgg(figure).print_png(buffer, metadata=_metadata(report, pdf=False))
    return buffer.getvalue()


def _metadata(report: CaseReport, pdf: bool) -> dict:
    # matplotlib would write its own version as the creator; the file says what made it instead.
    title = f"LRCLR case report: {report.case_id}"
    if pdf:
        return {"Title": title, "Creator": "LRCLR Review", "Producer": "LRCLR Review (matplotlib)",
                "CreationDate": report.made, "Author": None, "Subject": None, "Keywords": None}
    return {"Title": title, "Software": "LRCLR Review (matplotlib)"}


def build_figure(report: CaseReport, raster: bool = True) -> Figure:
    """The page as a matplotlib Figure (no canvas attached). Images are resampled to the pixels the
    page gives them: ``PNG_DPI`` for a raster page, up to ``PDF_IMAGE_PPI`` (never enlarged) for a
    PDF. Every text in it is literal."""
    figure = Figure(figsize=A4_INCHES, dpi=PNG_DPI, facecolor="white")
    images = _Images(PNG_DPI if raster else PDF_IMAGE_PPI, grow=raster)
    top = _header(figure, report)
    if report.notes:
        top = draw_lines(figure, top - 0.004, [f"⚠ {note}" for note in report.notes], size=7.5, colour="#8a5300")
    image_bottom = _radiograph(figure, report, top - 0.012, images)
    _maps(figure, report.maps, top - 0.012, image_bottom, images)
    y = draw_lines(figure, image_bottom - 0.008, [f"Shows: {report.overlay_caption}."], size=7)
    if report.display:
        y = draw_lines(figure, y, [f"Display: {report.display}."], size=7, colour="#555555")
    if report.report_text is not None:
        y = _report_text(figure, report.report_text, y - 0.006)
    y = draw_findings(figure, y - 0.01, report.findings, report.greyed)
    draw_lines(figure, y - 0.004, list(report.legend), size=7, colour="#444444")
    _footer(figure, report)
    return matplotlib_literal(figure)


@dataclass(frozen=True)
class _Images:
    ppi: int
    grow: bool

    def draw(self, figure: Figure, picture: Image.Image, area: Box) -> Box:
        return draw_image(figure, picture, area, self.ppi, self.grow)


def _header(figure: Figure, report: CaseReport) -> float:
    figure.text(0.06, 0.965, "LRCLR Review · case report", size=15, weight="bold", va="baseline")
    figure.text(0.94, 0.965, NOT_A_MEDICAL_DEVICE, size=11, weight="bold", color="#b00020", ha="right",
                va="baseline", bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#b00020"})
    version = f" · code {report.code_version}" if report.code_version else ""
    figure.text(0.06, 0.948, f"Case {report.case_id} · model {report.model_id}{version} · "
                f"{report.made:%Y-%m-%d %H:%M} UTC", size=8.5, color="#333333", va="baseline")
    figure.add_artist(Line2D([0.06, 0.94], [0.940, 0.940], color="#999999", linewidth=0.8))
    return 0.935


def _radiograph(figure: Figure, report: CaseReport, top: float, images: _Images) -> float:
    """The overlay in the left half of the page, its colour bar beside it; returns its bottom."""
    placed = images.draw(figure, report.overlay, Box(0.06, top - 0.37, 0.44, 0.37))
    if report.colour_bar is not None:
        scale, title = report.colour_bar
        draw_colour_bar(figure, Box(placed.right + 0.012, placed.bottom, 0.016, placed.height), scale, title)
    else:
        figure.text(placed.right + 0.012, placed.bottom, "no heat map painted", size=7, color="#555555",
                    rotation=90, va="bottom")
    return placed.bottom


def _maps(figure: Figure, maps: Sequence[MapPanel], top: float, bottom: float, images: _Images) -> None:
    """The chosen words' and phrases' maps, two by two in the right column, each with its caption
    and the range its colours span."""
    left, width = 0.64, 0.30
    figure.text(left, top, "Chosen words and phrases", size=10, weight="bold", va="top")
    if not maps:
        draw_lines(figure, top - 0.018, ["None chosen: choose a report word or type a phrase on the Review page "
                                         "(Export tab, 'Maps in the case report')."], size=7, colour="#555555",
                   x=left)
        return
    cell_w, cell_h = width / 2, (top - 0.02 - bottom) / 2
    for index, panel in enumerate(maps[:MAX_MAPS]):
        row, column = divmod(index, 2)
        x, y_top = left + column * cell_w, top - 0.02 - row * cell_h
        placed = images.draw(figure, panel.picture, Box(x + 0.004, y_top - cell_h + 0.05, cell_w - 0.008,
                                                        cell_h - 0.055))
        caption = panel.caption if len(panel.caption) <= 80 else panel.caption[:79] + "…"
        detail = panel.note or (f"colours span {panel.scale.low:.3f} to {panel.scale.high:.3f}" if panel.scale else "")
        y = draw_lines(figure, placed.bottom - 0.004, [caption], size=7, x=x + 0.004, right=x + cell_w, max_lines=2)
        draw_lines(figure, y, [detail], size=6.5, colour="#555555", x=x + 0.004, right=x + cell_w, max_lines=3)


def _report_text(figure: Figure, text: str, top: float) -> float:
    shown = " ".join(text.split())
    if len(shown) > MAX_REPORT_CHARACTERS:
        shown = shown[:MAX_REPORT_CHARACTERS].rsplit(" ", 1)[0] + " … (cut here; the JSON export has it all)"
    figure.text(0.06, top, "Report (included because you asked)", size=8, weight="bold", va="top")
    return draw_lines(figure, top - 0.016, [shown], size=7)


def _footer(figure: Figure, report: CaseReport) -> None:
    figure.add_artist(Line2D([0.06, 0.94], [0.052, 0.052], color="#999999", linewidth=0.8))
    figure.text(0.06, 0.038, f"Research software. {NOT_A_MEDICAL_DEVICE}: not for diagnosis or treatment.",
                size=8, weight="bold", color="#b00020", va="baseline")
    figure.text(0.06, 0.024, "No patient identifiers: the case is named by its id (a demo id or the upload's "
                "SHA-256), never by a file name or DICOM field.", size=7, color="#444444", va="baseline")
    figure.text(0.94, 0.038, "page 1 of 1", size=7, color="#444444", ha="right", va="baseline")
