"""The Review page's trust features with AppTest on the bundled model: the findings table's
evidence, typed findings, the input gate, counterfactual probes, the deletion test and the export."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lrclr.trust.reliability import finding_reliability
from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.app_pages import captured_downloads

CARD = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text(encoding="utf-8"))


def _open_tab(app: AppTest, name: str) -> AppTest:
    app.session_state["review-tab"] = name
    return app.run()


def _text(values) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", v.value) for v in values]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_findings_table_shows_the_cards_evidence_for_every_row(app):
    table = app.dataframe[0].value.set_index("finding")
    assert len(table) == 14
    evidence = finding_reliability(CARD, list(table.index))
    for finding, row in table.iterrows():
        facts = evidence[finding]
        called = row["probability"] >= facts.threshold(0.5)
        assert row["called"].startswith(f"yes ≥{facts.threshold(0.5):.2f}" if called else f"no <{facts.threshold(0.5):.2f}")
        assert row["called"].endswith("†") != bool(facts.operating_point)
        shown = row["AUC (95% CI)"]
        assert shown.endswith(", raw") != facts.calibrated
        if not facts.validated:
            assert shown.startswith("not validated")
        else:
            assert f"{facts.auc:.2f} ({facts.ci_low:.2f}-{facts.ci_high:.2f})" in shown
            assert shown.startswith("✗") != facts.reliable


def test_a_typed_finding_is_scored_and_said_to_be_not_validated(app):
    app.text_input(key="extra-findings").set_value("rib fracture, <b>x</b>").run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("finding")
    assert len(table) == 16 and table.loc["rib fracture", "AUC (95% CI)"] == "not validated, raw"
    assert table.loc["<b>x</b>", "AUC (95% CI)"] == "not validated, raw"  # shown as text, scored like any name
    _open_tab(app, "Report words")
    _open_tab(app, "Findings")
    assert len(app.dataframe[0].value) == 16  # kept while another tab was open


@pytest.mark.parametrize("picture, reason", [
    (np.full((400, 400), 0.5), "blank"),
    (np.tile(np.array([0.0, 1.0]).repeat(8), 400 // 16 * 400 // 1)[: 400 * 400].reshape(400, 400), "text"),
])
def test_a_non_chest_image_is_gated_and_its_scores_greyed(app, picture, reason):
    app.radio(key="review-source").set_value("Upload").run()
    app.file_uploader(key="review-image").set_value(("frame.png", _png(picture), "image/png")).run()
    assert not app.exception
    warnings = _text(app.warning)
    assert any("does not look like a frontal chest radiograph" in w and reason in w for w in warnings)
    bars = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if "operating point" in c.proto.spec)
    assert set(bars["data"][0]["marker"]["color"]) == {"#9e9e9e"}
    _open_tab(app, "Checks")
    assert any("fails" in str(frame.value) for frame in app.dataframe)


def _phrase_key(app: AppTest) -> str:
    return next(t.key for t in app.text_input if t.key and t.key.startswith("phrase-"))


def test_the_counterfactual_probe_negates_and_mirrors_the_phrase(app):
    _open_tab(app, "Phrase")
    app.text_input(key=_phrase_key(app)).set_value("left pleural effusion").run()
    next(b for b in app.button if b.key == "counterfactual-run").click().run()
    assert not app.exception
    table = next(f.value for f in app.dataframe if "edit" in f.value.columns)
    assert list(table["edit"]) == ["negated", "sides swapped"]
    assert list(table["phrase"]) == ["no left pleural effusion", "right pleural effusion"]
    assert len(app.get("image")) >= 3  # the original, negated and mirrored maps side by side


def test_the_deletion_test_reports_top_and_random_drops(app):
    _open_tab(app, "Checks")
    next(b for b in app.button if b.key == "deletion-run").click().run()
    assert not app.exception
    table = next(f.value for f in app.dataframe if "finding" in f.value.columns)
    assert len(table) == 14
    assert {"drop, top 4", "drop, random 4"} <= set(table.columns)
    assert any("Mean |drop|: top cells" in c for c in _text(app.caption))


def test_the_export_holds_what_the_page_showed(app, monkeypatch):
    captured = captured_downloads(monkeypatch)
    _open_tab(app, "Checks")
    next(b for b in app.button if b.key == "deletion-run").click().run()
    _open_tab(app, "Export")
    name = next(n for n in captured if n.endswith("-analysis.json"))
    record = json.loads(captured[name]())
    assert record["model_id"] == CARD["model_id"]
    assert {"input_check", "map"} <= set(record["checks"])
    assert record["checks"]["input_check"]["passed"] is True
    rows = {r["finding"]: r for r in record["findings_vs_report"]}
    assert set(rows) >= {"Effusion", "Cardiomegaly"} and "evidence" in rows["Effusion"]


def test_the_png_export_says_what_it_shows_and_the_json_leaves_the_report_out_unless_asked(app, monkeypatch):
    """Issue #19: the PNG had no word, colour bar, model id or 'not a medical device' line, and the
    JSON embedded the report (real reports carry names and dates)."""
    from PIL import Image

    captured = captured_downloads(monkeypatch)
    _open_tab(app, "Export")
    png = Image.open(io.BytesIO(captured[next(n for n in captured if n.endswith("-overlay.png"))]()))
    footer = np.asarray(png.convert("L"))[-60:]
    assert png.height > png.width and (footer < 128).mean() > 0.005  # a footer with text below the picture
    record = json.loads(captured[next(n for n in captured if n.endswith("-analysis.json"))]())
    report = next(t for t in app.text_area if t.label == "Report").value
    assert record["report_included"] is False and report not in json.dumps(record)
    next(c for c in app.checkbox if c.key == "export-include-report").check().run()
    record = json.loads(captured[next(n for n in captured if n.endswith("-analysis.json"))]())
    assert record["report_included"] is True and record["explanation"]["report"] == report
