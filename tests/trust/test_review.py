"""The Review page's pure parts: findings beside the report, phrase maps, exports and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lrclr.display import figures as viz
from lrclr.model.letterbox import letterbox_geometry
from lrclr.trust.case_findings import (
    NO_REPORT,
    analysis_record,
    finding_rows,
    phrase_map,
    sha256_hex,
    word_map,
)
from tests.support.explanations import GRID
from tests.support.explanations import made_explanation as _explanation


def test_discordance_marks_only_what_the_report_commits_to():
    report = "Large right pleural effusion. No pneumothorax. Possible mass in the left upper lobe."
    rows = {r.finding: r for r in finding_rows(_explanation(report, {
        "Effusion": 0.30, "Pneumothorax": 0.70, "Mass": 0.90, "Cardiomegaly": 0.80, "Nodule": 0.10,
    }))}
    assert rows["Effusion"].report_says == "present"
    assert rows["Effusion"].discordance == "report states it; model scores it low"
    assert rows["Pneumothorax"].report_says == "absent"
    assert rows["Pneumothorax"].discordance == "report denies it; model scores it high"
    assert (rows["Mass"].report_says, rows["Mass"].discordance) == ("uncertain", "")  # hedged: no conflict
    assert (rows["Cardiomegaly"].report_says, rows["Cardiomegaly"].discordance) == ("not mentioned", "")
    assert rows["Nodule"].discordance == ""
    # The threshold decides: at 0.25 the effusion score no longer counts as low.
    assert {r.finding: r.discordance for r in finding_rows(_explanation(report, {"Effusion": 0.30}), 0.25)} == {
        "Effusion": ""}


def test_without_a_report_nothing_is_discordant():
    rows = finding_rows(_explanation("", {"Effusion": 0.9, "Mass": 0.1}))
    assert [(r.report_says, r.discordance) for r in rows] == [(NO_REPORT, ""), (NO_REPORT, "")]


def test_a_phrase_map_is_the_mean_of_its_word_maps():
    explanation = _explanation("left pleural effusion", {})
    expected = np.mean([explanation.attention_map(i) for i in range(3)], axis=0)
    np.testing.assert_allclose(phrase_map(explanation), expected)
    # Words 0 and 2 put all attention on region 1 (cell 0,0); word 1 splits 0.25 / 0.75.
    assert phrase_map(explanation)[0, 0] == pytest.approx((1 + 0.25 + 1) / 3)
    assert phrase_map(explanation)[3, 3] == pytest.approx(0.75 / 3)


def test_the_baseline_grounds_words_by_patch_similarity():
    explanation = _explanation("effusion", {}, with_regions=False)
    assert word_map(explanation, 0)[1, 2] == 1.0
    assert phrase_map(_explanation("", {})).shape == GRID


def test_the_analysis_export_is_json_and_names_the_case_only_by_id_and_hashes():
    report = "Small left pleural effusion."
    explanation = _explanation(report, {"Effusion": 0.8})
    record = analysis_record(explanation, b"image bytes", "upload-0123456789ab", {"code_version": "lrclr 0.1.0"})
    text = json.dumps(record)
    assert record["image_sha256"] == sha256_hex(b"image bytes")
    assert record["report_sha256"] == sha256_hex(report)
    assert record["findings_vs_report"][0]["report_says"] == "present"
    assert "file_name" not in text and "PatientName" not in text
    # The report's text, and so each word's, only when asked for (issue #19: real reports carry
    # names and dates); otherwise the hash and the words' positions.
    assert report not in text and "Small" not in text and record["report_included"] is False
    assert record["explanation"]["words"][0]["start"] == 0 and record["explanation"]["words"][0]["text"] is None
    with_report = analysis_record(explanation, b"image bytes", "upload-0123456789ab", {"code_version": "x"},
                                  include_report=True)
    assert with_report["explanation"]["report"] == report and with_report["explanation"]["words"][0]["text"] == "Small"


def test_window_level_maps_the_window_onto_black_to_white():
    pixels = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(viz.window_level(pixels, 0.5, 1.0), pixels)
    np.testing.assert_allclose(viz.window_level(pixels, 0.5, 0.5), [[0.0, 0.0, 0.5, 1.0, 1.0]])
    assert viz.window_level(pixels, 0.5, 0.0).max() == 1.0  # a zero width is clamped, never divides by 0


def test_region_boxes_fade_with_opacity_and_a_chosen_region_is_drawn_apart():
    explanation = _explanation("effusion", {})
    base = Image.new("RGB", (400, 400), (0, 0, 0))  # display at 2x the 200 px original
    edge = (0, 50)  # on region 1's left edge (box x0=0 scaled by 2)
    strong = np.asarray(viz.draw_regions(base, explanation, opacity=1.0))[edge[1], edge[0]]
    faint = np.asarray(viz.draw_regions(base, explanation, opacity=0.3))[edge[1], edge[0]]
    assert tuple(strong) == viz.REGION_COLOUR
    assert 0 < faint[0] < strong[0]
    only_two = np.asarray(viz.draw_regions(base, explanation, ranks={2}))
    assert only_two[edge[1], edge[0]].sum() == 0
    chosen = np.asarray(viz.highlight_region(base, explanation, 2))
    assert tuple(chosen[300, 301]) == viz.SELECTED_COLOUR  # region 2 spans 300..400 at display scale


def test_the_viewer_figure_hovers_numbers_only_and_keeps_zoom_per_revision():
    explanation = _explanation("<script>alert(1)</script>", {})
    figure = viz.viewer_figure(Image.new("RGB", (400, 400)), explanation, regions_shown=2, view_revision="case-0")
    image_trace, markers = figure.data
    assert image_trace.source.startswith("data:image/jpeg;base64,")  # fast redraws by default
    lossless = viz.viewer_figure(Image.new("RGB", (400, 400)), explanation, lossless=True)
    assert lossless.data[0].source.startswith("data:image/png;base64,")
    assert list(markers.x) == [50.0, 350.0] and list(markers.y) == [50.0, 350.0]
    assert "script" not in markers.hovertemplate and "script" not in json.dumps(list(markers.customdata))
    assert figure.layout.uirevision == "case-0"
    assert len(viz.viewer_figure(Image.new("RGB", (400, 400)), explanation, regions_shown=0).data) == 1


def test_a_ground_truth_mask_is_tinted_where_it_is_true():
    base = Image.new("RGB", (100, 100), (0, 0, 0))
    mask = np.zeros((50, 50), dtype=bool)
    mask[:25] = True  # top half of the original -> top half of the display
    tinted = np.asarray(viz.mask_overlay(base, mask, opacity=1.0))
    assert tuple(tinted[10, 50]) == viz.MASK_COLOUR and tuple(tinted[90, 50]) == (0, 0, 0)


def test_findings_bars_are_sorted_with_their_own_operating_points():
    figure = viz.findings_bar_figure([("Effusion", 0.2, True, 0.3, True), ("Mass", 0.9, False, 0.5, False)])
    bars, ticks = figure.data
    assert list(bars.y) == ["Effusion", "Mass"]  # ascending, so the highest is drawn on top
    assert bars.marker.color[0] != bars.marker.color[1]
    assert list(ticks.x) == [0.3, 0.5] and list(ticks.y) == ["Effusion", "Mass"]
    assert list(bars.marker.pattern.shape) == ["", "/"]  # the unreliable one is hatched
    greyed = viz.findings_bar_figure([("Effusion", 0.2, True, 0.3, True)], greyed=True).data[0]
    assert greyed.marker.color[0] == "#9e9e9e"
    typed = viz.findings_bar_figure([("<b>x</b>", 0.5, False, 0.5, False)]).data[0]
    assert list(typed.y) == ["&lt;b&gt;x&lt;/b&gt;"]  # user text is never plotly markup


def test_a_fixed_scale_paints_the_same_value_the_same_colour_and_dims_uniform_attention():
    base = Image.new("RGB", (40, 40), (0, 0, 0))
    weak = np.full((4, 4), 0.05, dtype=np.float32)
    strong = np.full((4, 4), 0.05, dtype=np.float32)
    strong[0, 0] = 0.9
    scale = viz.map_scale(weak, "attention", fixed=True, uniform=1 / 16)
    assert (scale.low, scale.high) == (0.0, 1.0)
    dimmed = np.asarray(viz.overlay_heatmap(base, weak, letterbox_geometry((40, 40), 40), opacity=1.0, scale=scale))
    assert dimmed.max() == 0  # nothing above the uniform level: the film shows through unpainted
    painted = np.asarray(viz.overlay_heatmap(base, strong, letterbox_geometry((40, 40), 40), opacity=1.0, scale=scale))
    assert painted[2, 2].max() > 100 and painted[38, 38].max() == 0
    own = viz.map_scale(weak + np.linspace(0, 0.01, 16).reshape(4, 4), "attention", fixed=False)
    assert own.high - own.low == pytest.approx(0.01, abs=1e-6)
    bar = viz.viewer_figure(base, None, colour_bar=(scale, "attention")).data[-1]
    assert bar.marker.cmin == 0.0 and bar.marker.cmax == 1.0 and bar.marker.showscale


def test_repeated_words_get_distinct_labels_that_read_the_same():
    from lrclr.trust.case_findings import distinct_labels
    labels = distinct_labels(["There", "is", "no", "effusion", "there", "is", "is"])
    assert len(set(labels)) == len(labels)
    assert [label.replace("\u200b", "") for label in labels] == ["There", "is", "no", "effusion", "there", "is", "is"]
    assert labels[1] == "is"  # the first occurrence is untouched


def test_the_exported_overlay_says_what_it_shows_whose_it_is_and_what_it_is_not():
    import datetime

    from lrclr.trust.case_findings import overlay_export_lines
    from lrclr.display.figures import MapScale

    lines = overlay_export_lines("heat map of the word 'effusion': values 0.010 to 0.300", "nih-02-effusion",
                                 "lrclr-default", datetime.datetime(2026, 12, 1, 16, 20))
    assert lines == ["Shows: heat map of the word 'effusion': values 0.010 to 0.300.",
                     "Case nih-02-effusion · model lrclr-default · 2026-12-01 16:20 UTC",
                     "Research software, not a medical device."]
    base = viz.to_display_rgb(np.full((200, 160), 0.5, dtype=np.float32))
    picture = viz.export_picture(base, lines, (MapScale(0.01, 0.3, kind="attention"), "attention (this map)"))
    assert picture.width == base.width and picture.height > base.height + 3 * 20  # footer: bar and lines
    assert np.asarray(picture)[:base.height].tolist() == np.asarray(base.convert("RGB")).tolist()


def test_region_numbers_stay_readable_on_the_yellow_end_of_the_heat_map():
    """Issue #19: the numbers were yellow on a yellow heat map. Each now has a black outline."""
    explanation = _explanation("Small effusion.", {})
    yellow = Image.new("RGB", (200, 200), tuple(int(c) for c in viz.heat_colours(np.array([1.0]))[0]))
    drawn = np.asarray(viz.draw_regions(yellow, explanation)).astype(int)
    x0, y0, _, _ = (int(c * 200 / explanation.image_size[0]) for c in explanation.regions[0].box)
    label = drawn[y0 + 2:y0 + 20, x0 + 3:x0 + 20]
    assert (label.sum(axis=-1) < 100).any()  # dark outline pixels around the number
