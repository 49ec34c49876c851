"""User text comes out literal: Markdown widgets, plotly labels, CSV cells (issue #17's payloads)."""

from __future__ import annotations

import csv
import io
import shutil

import torch

from lrclr.model.config import tiny_config
from lrclr.escaping import csv_text_cell, csv_text_value, markdown_literal, plotly_label
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.batch.prediction_csv import predict_rows, write_csv
from lrclr.batch.sources import collect_image_files
from tests.support.paths import TEST_DATA

MARKDOWN_PAYLOADS = [
    "[click](https://evil.example/x)", "![tracker](https://evil.example/pixel.png)", ":red[alarm] :material/home:",
    "$\\frac{1}{0}$", "**bold** _it_ `code` <b>html</b>", "https://evil.example/a", "www.evil.example",
    "someone@evil.example", "<img src=x onerror=alert(1)> a_b \\ [l](javascript:x)",
]


def test_markdown_literal_escapes_every_markdown_construct_and_breaks_bare_links():
    for payload in MARKDOWN_PAYLOADS:
        escaped = markdown_literal(payload).replace("\u2060", "")
        # Each punctuation mark is preceded by a backslash; letters, digits and spaces are untouched.
        expected = "".join(f"\\{c}" if c.isascii() and not c.isalnum() and not c.isspace() else c for c in payload)
        assert escaped == expected
    for bare_link in ("https://evil.example", "www.evil.example", "a@evil.example"):
        assert "\u2060" in markdown_literal(bare_link)


def test_plotly_labels_are_html_escaped():
    assert plotly_label('<a href="https://evil.example">me</a> & <b>x</b>') == \
        '&lt;a href="https://evil.example"&gt;me&lt;/a&gt; &amp; &lt;b&gt;x&lt;/b&gt;'


def test_csv_cells_never_start_a_formula_and_read_back_exactly():
    for text in ("=HYPERLINK(\"https://evil.example\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "'quoted", "plain"):
        cell = csv_text_cell(text)
        assert cell[0] not in "=+-@\t\r" and csv_text_value(cell) == text


def test_predictions_csv_neutralises_formula_file_names_in_image_and_error(tmp_path):
    """The Batch download and ``python -m lrclr predict`` write file names as text, never formulas."""
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config()).eval()
    shutil.copy(TEST_DATA / "nih_00000075_128_gray8.png", tmp_path / "=HYPERLINK(1).png")
    (tmp_path / "@SUM(A1).png").write_bytes(b"not an image")
    out = io.StringIO()
    write_csv(predict_rows(model, collect_image_files([tmp_path]), ["Cardiomegaly"]), out, ["Cardiomegaly"])
    rows = list(csv.reader(io.StringIO(out.getvalue())))[1:]
    cells = [cell for row in rows for cell in row if cell]
    assert {row[0] for row in rows} == {"'=HYPERLINK(1).png", "'@SUM(A1).png"}
    assert any(cell.startswith("'@SUM(A1).png: ") for cell in cells)  # the error names the file
    assert not any(cell[0] in "=+@\t\r" for cell in cells)


def test_a_url_in_a_report_is_not_a_link_on_the_annotate_page():
    """The sentence shown beside a region keeps its bold word; the report's own text stays text."""
    from types import SimpleNamespace

    from lrclr.annotations.queue import sentence_markdown

    sentence = "See https://evil.example/x and www.evil.example for effusion."
    item = SimpleNamespace(sentence=sentence, word_in_sentence=(sentence.index("effusion"), len(sentence) - 1))
    shown = sentence_markdown(item)
    assert "**effusion**" in shown
    assert "https\\:\u2060\\/\\/evil" in shown and "www\u2060\\.evil" in shown


def test_matplotlib_text_is_made_literal_in_a_whole_figure():
    """matplotlib reads "$...$" as maths; the helper turns that off for every text of a figure."""
    from matplotlib.figure import Figure

    from lrclr.escaping import matplotlib_literal

    figure = Figure()
    axes = figure.add_subplot()
    texts = [figure.text(0, 0, "$x^2$"), axes.set_title("cost $5 and $6"), axes.text(0, 0, r"\$ \alpha")]
    assert all(t.get_parse_math() for t in texts)  # matplotlib's default
    matplotlib_literal(figure)
    assert not any(t.get_parse_math() or t.get_usetex() for t in texts)
    assert [t.get_text() for t in texts] == ["$x^2$", "cost $5 and $6", r"\$ \alpha"]  # the strings unchanged
