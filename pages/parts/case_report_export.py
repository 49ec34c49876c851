"""The Export tab: the overlay PNG, the analysis JSON (with the measurements and the display
settings), and the case report: which words' and phrases' maps go on the page, and the PDF and PNG
downloads. Layout only: the page itself is drawn by ``lrclr.display.case_report``.

The report is assembled while the tab is drawn (its pictures are the overlays already on screen,
a few hundred milliseconds at most) and rendered only when a button is clicked, since Streamlit
calls a download's data function outside the page's run.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable

import numpy as np
import streamlit as st

from lrclr.display import case_report
from lrclr.display import figures as viz
from lrclr.display.case_report import CaseReport, MapPanel
from lrclr.display.encoding import png_bytes
from lrclr.display.operations import CLAHE_CLIP_LIMIT, CLAHE_TILES
from lrclr.trust.findings_table import findings_legend
from lrclr.trust.case_findings import analysis_record, finding_rows, overlay_export_lines, sha256_hex
from pages.parts import review_trust as trust
from pages.parts.widget_state import held

TRUNCATED_NOTE = "The report is longer than the model reads; words past the limit are not grounded."
PHRASE_OPTION = "phrase"


def map_options(explanation, phrase_text: str | None) -> dict[str, str]:
    """Option -> label: every report word (by position, so repeated words stay apart) and the typed
    phrase. Labels are plain text: a multiselect shows them as typed."""
    options = {f"word-{w.index}": f"{w.text} (word {w.index + 1})" for w in explanation.words}
    if phrase_text and phrase_text.strip():
        options[PHRASE_OPTION] = f"phrase: {phrase_text.strip()}"
    return options


def chosen_maps(explanation, word: int | None, phrase_text: str | None, widget_key: str) -> list[str]:
    """The multiselect of maps for the report; it starts from the word and phrase chosen on screen
    (a new choice there starts it afresh)."""
    options = map_options(explanation, phrase_text)
    default = [option for option in (f"word-{word}" if word is not None else None,
                                     PHRASE_OPTION if PHRASE_OPTION in options else None) if option in options]
    key = f"report-maps-{widget_key}-{word}-{sha256_hex(phrase_text or '')[:12]}"
    return st.multiselect(f"Maps in the case report (up to {case_report.MAX_MAPS})", list(options), default=default,
                          format_func=options.__getitem__, max_selections=case_report.MAX_MAPS, key=key)


def display_text(view) -> str:
    """The display settings in words, for the case report (``view``: a ViewSettings)."""
    parts = [view.window_text()]
    if view.invert:
        parts.append("inverted")
    if not view.orientation.is_identity:
        parts.append(f"{view.orientation.describe()} (display only)")
    if view.clahe:
        parts.append(f"CLAHE (clip limit {CLAHE_CLIP_LIMIT:g}, {CLAHE_TILES[0]} x {CLAHE_TILES[1]} tiles; "
                     "display only, the model sees the original pixels)")
    return ", ".join(parts)


def display_record(view) -> dict:
    """The display settings for the JSON export: what the overlay PNG was drawn with."""
    return {"window": {"preset": view.preset.name if view.preset else None, "center": view.center,
                       "width": view.width, "unit": view.scale.unit},
            "inverted": view.invert, "rotation_degrees_clockwise": view.orientation.rotation,
            "flipped_left_right": view.orientation.flipped, "clahe": view.clahe,
            "note": "display only: the model reads the image as stored"}


def export_panel(drawn, explanation, case, model, checks: dict, extra: dict) -> None:
    """The overlay PNG and the analysis JSON; ``extra`` (the measurements, the display settings)
    joins the JSON as it is."""
    lines = overlay_export_lines(drawn.caption, case.case_id, model.model_id,
                                 datetime.datetime.now(datetime.timezone.utc))
    st.download_button("Overlay as PNG", data=lambda: png_bytes(viz.export_picture(drawn.image, lines,
                                                                                        drawn.colour_bar)),
                       file_name=f"{case.case_id}-overlay.png", mime="image/png", on_click="ignore")
    include_report = st.checkbox("Include the report's text in the JSON and the case report",
                                 key="export-include-report", value=False,
                                 help="Off: the report is named by its SHA-256 only, and its words by their "
                                      "positions. Real reports carry names and dates.")
    threshold = held("findings-threshold", 0.5)
    record = lambda: json.dumps({**analysis_record(explanation, case.data, case.case_id, model.model_card, threshold,
                                                   checks, include_report=include_report), **extra},
                                indent=2, default=_json_default)
    st.download_button("Analysis as JSON", data=record, file_name=f"{case.case_id}-analysis.json",
                       mime="application/json", on_click="ignore")
    st.caption("Exports name the case by its id and hashes; no file names or patient identifiers"
               + (", and the JSON holds the report's text because you asked." if include_report
                  else ", and no report text."))


def _json_default(value):
    """numpy numbers and arrays in the checks (maps, drops) become plain JSON."""
    if isinstance(value, np.ndarray):
        return np.round(value.astype(float), 4).tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")



def map_panel(what: str, drawn) -> MapPanel:
    """A map as the viewer would draw it (``drawn``: the page's overlay of it, boxes off)."""
    if drawn.colour_bar is not None:
        return MapPanel(what, drawn.image, drawn.colour_bar[0])
    specificity = drawn.record.get("specificity") or {}
    correlation = specificity.get("correlation_with_reference")
    why = f" (correlation {correlation:.2f} with this image's mean map)" if correlation is not None else ""
    return MapPanel(what, drawn.image, None, f"not painted: it does not depend on the text here{why}")


def report_downloads(drawn, explanation, case, model, check, view, draw_choice: Callable,
                     word: int | None, phrase_text: str | None, widget_key: str) -> None:
    """The maps' picker and the two downloads. ``draw_choice(word, phrase_text)`` gives (what, drawn
    overlay) for a word index or a phrase, drawn by the same rules as the viewer."""
    chosen = chosen_maps(explanation, word, phrase_text, widget_key)
    panels = []
    for option in chosen:
        what, overlay = (draw_choice(None, phrase_text) if option == PHRASE_OPTION
                         else draw_choice(int(option.removeprefix("word-")), None))
        panels.append(map_panel(what, overlay))
    include_report = bool(st.session_state.get("export-include-report", False))
    threshold = held("findings-threshold", 0.5)
    rows = tuple(finding_rows(explanation, threshold, model.model_card))
    notes = tuple(n for n in (trust.gate_warning(check), trust.seen_in_training(model, case),
                              TRUNCATED_NOTE if explanation.report_truncated else None) if n)
    report = CaseReport(
        case_id=case.case_id, model_id=model.model_id, made=datetime.datetime.now(datetime.timezone.utc),
        overlay=drawn.image, overlay_caption=drawn.caption, colour_bar=drawn.colour_bar, findings=rows,
        legend=tuple(findings_legend(model.model_card, rows, bool(explanation.report.strip()))),
        greyed=not check.passed, notes=notes, maps=tuple(panels), display=display_text(view),
        code_version=model.model_card.get("code_version"),
        report_text=explanation.report if include_report and explanation.report.strip() else None)
    left, right = st.columns(2)
    left.download_button("Case report as PDF", data=lambda: case_report.pdf_bytes(report),
                         file_name=f"{case.case_id}-report.pdf", mime="application/pdf", on_click="ignore")
    right.download_button("Case report as PNG", data=lambda: case_report.png_bytes(report),
                          file_name=f"{case.case_id}-report.png", mime="image/png", on_click="ignore")
    st.caption("The case report: one A4 page with the radiograph and overlay as shown, its colour bar, the "
               "findings table, the chosen maps, the model and the date. Not a medical device.")
