"""Review: open a case, see finding scores, the selected regions and which report words each answers to.

Layout only; everything computed comes from ``lrclr`` (model, review, viz). Encodings are cached so
that choosing a word, a region or a display setting only redraws.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from lrclr.display import figures as viz
from lrclr.display import operations as display
from lrclr.errors import ImageReadError
from lrclr.escaping import markdown_literal
from lrclr.imaging.reading import LoadedImage, load_image
from lrclr.model.lrclr_model import CaseImage, LRCLRModel
from lrclr.findings import NIH_FINDINGS
from lrclr.trust.case_findings import (
    analysis_record,
    distinct_labels,
    overlay_export_lines,
    phrase_map,
    sha256_hex,
    word_map,
)
from pages.parts import case_report_export
from pages.parts import review_trust as trust
from pages.parts.case_source import CaseInput, choose_case
from pages.parts.shared import cached, current_model, current_settings, encode_case, image_bytes, model_is_loading, model_key
from pages.parts import frame
from pages.parts.widget_state import held, hold, in_range, put

VIEW_DEFAULTS = {"level": 50, "width": 100, "invert": False, "clahe": False, "full_resolution": False}


def read_image(case: CaseInput, image_sha: str, show_identifiers: bool) -> LoadedImage | None:
    try:
        image = cached("image", (image_sha, show_identifiers),
                       lambda: load_image(case.data, name=case.file_name, include_identifiers=show_identifiers,
                                          max_decoded_pixels=current_settings().budgets.decoded_pixels),
                       keep=4, size=image_bytes)
    except ImageReadError as error:
        st.error(markdown_literal(str(error)))
        return None
    for warning in image.warnings:
        st.warning(markdown_literal(warning))
    return image


def view_controls() -> dict:
    """Window/level, invert and resolution, with a reset that also refits the zoom."""
    hold("view-level", VIEW_DEFAULTS["level"], in_range(0, 100))
    hold("view-width", VIEW_DEFAULTS["width"], in_range(5, 100))
    for name in ("invert", "clahe", "full_resolution"):
        hold(f"view-{name}", VIEW_DEFAULTS[name])
    with st.expander("Display", expanded=False):
        st.slider("Level (window centre, %)", 0, 100, key="view-level")
        st.slider("Window width (%)", 5, 100, key="view-width")
        st.checkbox("Invert", key="view-invert")
        st.checkbox("CLAHE (local contrast)", key="view-clahe",
                    help=f"Contrast-limited adaptive histogram equalisation of the displayed image, after the "
                         f"window: clip limit {display.CLAHE_CLIP_LIMIT:g} on {display.CLAHE_TILES[0]} x "
                         f"{display.CLAHE_TILES[1]} tiles. Display only: the model sees the original pixels")
        st.checkbox("Full resolution, lossless", key="view-full_resolution",
                    help="Send the image at its stored size as PNG, instead of at most 1024 px as JPEG "
                         "(quality 95), which redraws faster")
        st.button("Reset display and zoom", on_click=_reset_view)
    return {name: st.session_state[f"view-{name}"] for name in VIEW_DEFAULTS}


def _reset_view() -> None:
    for name, value in VIEW_DEFAULTS.items():
        put(f"view-{name}", value)
    st.session_state["view-revision"] = st.session_state.get("view-revision", 0) + 1


def base_image(image: LoadedImage, view: dict):
    pixels = viz.window_level(image.pixels, view["level"] / 100, view["width"] / 100)
    max_side = max(image.original_size) if view["full_resolution"] else viz.DISPLAY_MAX_SIDE
    return viz.to_display_rgb(pixels, max_side=max_side, invert=view["invert"], clahe=view["clahe"])


REVIEW_TABS = ("Findings", "Report words", "Regions", "Phrase", "Checks", "Export")


def kept(key: str):
    """The value of a widget whose tab is closed in this run (None if never set).

    Streamlit forgets the state of widgets a run does not draw; writing it back keeps the user's
    chosen word, region or phrase, and so the overlay, while another tab is open.
    """
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]
    return st.session_state.get(key)


def words_panel(explanation, key: str) -> int | None:
    if not explanation.words:
        st.info("No report words to ground. Type a phrase in the Phrase tab instead.")
        return None
    words = explanation.words
    labels = distinct_labels([markdown_literal(w.text) for w in words])
    chosen = st.pills("Report words: choose one to see where it looks", list(range(len(words))),
                      format_func=lambda i: labels[i], key=f"word-{key}")
    if chosen is not None and words[chosen].region_attention is not None:
        st.caption(markdown_literal(f"Attention of '{words[chosen].text}' (word {chosen + 1}) over the selected "
                                    "regions; the dotted line is a uniform spread"))
        st.plotly_chart(viz.region_attention_figure(words[chosen].region_attention), key="word-regions")
    return chosen


def regions_panel(explanation, key: str) -> int | None:
    if not explanation.regions:
        st.info("This model has no region selector (global-only baseline): word maps use patch similarity.")
        return None
    by_rank = {r.rank: r for r in explanation.regions}
    rank = st.pills("Regions by rank: choose one to list its words", list(by_rank),
                    format_func=lambda r: f"{r} ({by_rank[r].significance:.2f})", key=f"region-{key}")
    if rank is not None:
        region = by_rank[rank]
        st.caption(f"Region {rank}: significance (selector) {region.significance:.3f}, grid cell {region.cell}")
        if region.top_words:
            st.dataframe(pd.DataFrame({"word": [w.text for w in region.top_words],
                                       "position": [w.word_index + 1 for w in region.top_words],
                                       "attention": [round(w.weight, 3) for w in region.top_words]}),
                         hide_index=True, width="stretch")
        else:
            st.caption("No report words to list.")
    return rank


def phrase_panel(case_key: tuple) -> str:
    return st.text_input("Ground a phrase", key=f"phrase-{case_key[1]}", max_chars=500,
                         placeholder="e.g. left pleural effusion")


def phrase_explanation(model: LRCLRModel, case_image: CaseImage, case_key: tuple, phrase: str | None):
    if not phrase or not phrase.strip():
        return None
    return cached("phrase", (case_key, phrase), lambda: model.explain(case_image, phrase, findings=()))


def export_panel(drawn: "DrawnOverlay", explanation, case: CaseInput, model: LRCLRModel, checks: dict) -> None:
    lines = overlay_export_lines(drawn.caption, case.case_id, model.model_id,
                                 datetime.datetime.now(datetime.timezone.utc))
    st.download_button("Overlay as PNG", data=lambda: viz.png_bytes(viz.export_picture(drawn.image, lines,
                                                                                        drawn.colour_bar)),
                       file_name=f"{case.case_id}-overlay.png", mime="image/png", on_click="ignore")
    include_report = st.checkbox("Include the report's text in the JSON and the case report",
                                 key="export-include-report", value=False,
                                 help="Off: the report is named by its SHA-256 only, and its words by their "
                                      "positions. Real reports carry names and dates.")
    threshold = held("findings-threshold", 0.5)
    record = lambda: json.dumps(analysis_record(explanation, case.data, case.case_id, model.model_card, threshold,
                                                checks, include_report=include_report), indent=2, default=_json_default)
    st.download_button("Analysis as JSON", data=record, file_name=f"{case.case_id}-analysis.json",
                       mime="application/json", on_click="ignore")
    st.caption("Exports name the case by its id and hashes; no file names or patient identifiers"
               + (", and the JSON holds the report's text because you asked." if include_report
                  else ", and no report text."))


def _json_default(value):
    """numpy numbers and arrays in the checks (maps, drops) become plain JSON."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return np.round(value.astype(float), 4).tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def mask_comparison(case: CaseInput, image: LoadedImage, model_view) -> None:
    if case.demo is None or not case.demo.mask_findings:
        return
    finding = st.selectbox("Ground-truth mask (phantom)", ["(none)", *case.demo.mask_findings])
    if finding == "(none)":
        return
    base = viz.to_display_rgb(image.pixels)
    left, right = st.columns(2)
    left.image(model_view, caption="Model's map", width="stretch")
    right.image(viz.mask_overlay(base, case.demo.mask(finding)), caption=f"Ground truth: {finding}", width="stretch")


def identifiers_key(image_sha: str) -> str:
    """Showing identifiers is asked for one case at a time: the next case opens with them hidden."""
    return f"show-identifiers-{image_sha[:16]}"


def header_panels(image: LoadedImage, image_sha: str) -> None:
    if image.source_format != "dicom":
        return
    show_identifiers = bool(st.session_state.get(identifiers_key(image_sha), False))
    title = "shown below, for this case only" if show_identifiers else "hidden"
    with st.expander(f"DICOM header (patient identifiers {title})"):
        st.checkbox("Show patient identifiers for this case", key=identifiers_key(image_sha),
                    help="Off by default and for every new case; identifiers are never exported or stored.")
        if image.header:
            st.table(pd.DataFrame({"field": list(image.header), "value": list(image.header.values())}))
    if show_identifiers and image.identifiers:
        with st.expander("Patient identifiers (shown because you asked)", expanded=True):
            st.table(pd.DataFrame({"field": list(image.identifiers), "value": list(image.identifiers.values())}))


def review(case: CaseInput) -> None:
    image_sha = sha256_hex(case.data)  # once per run: a DICOM can be megabytes
    show_identifiers = bool(st.session_state.get(identifiers_key(image_sha), False))
    image = read_image(case, image_sha, show_identifiers)
    if image is None:
        return
    viewer, panels = st.columns([3, 2])
    chart_slot = viewer.empty()
    with viewer:
        view = view_controls()
    base = base_image(image, view)
    if model_is_loading():
        # The radiograph can be read while the weights load; the overlay replaces it when they are in.
        with chart_slot.container():
            st.plotly_chart(viz.viewer_figure(base, None), config={"scrollZoom": True, "displaylogo": False},
                            theme=None)
            st.caption(f"{image.original_size[0]}x{image.original_size[1]} px · loading the model…")
    model = current_model()
    if model is None:
        chart_slot.image(base, caption=f"{image.original_size[0]}x{image.original_size[1]} px")
        panels.warning("No model is loaded (see the sidebar), so only the image is shown.")
        header_panels(image, image_sha)
        return
    case_key = (model_key(model), image_sha)
    typed = trust.extra_findings(kept(trust.EXTRA_FINDINGS))  # kept: its box is in the Findings tab
    findings = (*NIH_FINDINGS, *(f for f in typed if f not in NIH_FINDINGS))
    with st.spinner("Reading the image and the report…"):
        case_image = encode_case(model, case_key[0], image_sha, image)
        explanation = cached("explanation", (case_key, case.report, findings),
                             lambda: model.explain(case_image, case.report, findings), keep=16)
    # Once per case, not on every click: it reads the full-resolution pixels.
    check = cached("input-check", case_key, lambda: trust.input_gate(model, image, case_image))
    widget_key = f"{image_sha[:12]}-{sha256_hex(case.report)[:12]}"
    checks: dict = {"input_check": trust.gate_record(check)}
    with panels:
        trust.show_gate(check)
        trust.seen_in_training_note(model, case)
        if explanation.report_truncated:
            st.warning("The report is longer than the model reads; words past the limit are not grounded.")
        # Only the open tab is drawn (choosing a tab reruns the page): a report's word and region
        # buttons cost the browser more than the rest of a new case together (BENCHMARKS.md).
        tabs = dict(zip(REVIEW_TABS, st.tabs(REVIEW_TABS, key="review-tab", on_change="rerun")))
        with tabs["Findings"]:
            if tabs["Findings"].open:
                trust.findings_panel(explanation, model, check)
                trust.extra_findings_input()
        with tabs["Report words"]:
            word = words_panel(explanation, widget_key) if tabs["Report words"].open else kept(f"word-{widget_key}")
        with tabs["Regions"]:
            rank = regions_panel(explanation, widget_key) if tabs["Regions"].open else kept(f"region-{widget_key}")
        with tabs["Phrase"]:
            text = phrase_panel(case_key) if tabs["Phrase"].open else kept(f"phrase-{case_key[1]}")
            phrase = phrase_explanation(model, case_image, case_key, text)
    with viewer:
        settings = overlay_controls(explanation)
    grid_map, what = chosen_map(explanation, word, phrase, text)
    drawn = overlay(base, image, model, case_image, case_key, explanation, settings, grid_map, what, rank)
    checks["map"] = drawn.record
    with chart_slot.container():
        revision = f"{image_sha}-{st.session_state.get('view-revision', 0)}"
        regions_drawn = settings["top"] if settings["show_regions"] else 0
        st.plotly_chart(viz.viewer_figure(drawn.image, explanation, regions_drawn, view_revision=revision,
                                          lossless=view["full_resolution"], colour_bar=drawn.colour_bar),
                        key="viewer", config={"scrollZoom": True, "displaylogo": False}, theme=None)
        st.caption(markdown_literal(f"{image.original_size[0]}x{image.original_size[1]} px · {drawn.caption} · "
                                    "scroll to zoom, drag to pan, double-click to fit"))
    with viewer:
        mask_comparison(case, image, drawn.image)
    with tabs["Phrase"]:
        if tabs["Phrase"].open:
            checks["counterfactuals"] = trust.counterfactual_panel(model, case_image, case_key, text, base, image,
                                                                   settings)
    with tabs["Checks"]:
        if tabs["Checks"].open:
            checks["deletion_test"] = trust.deletion_panel(model, image, case_image, case_key, grid_map, what,
                                                           explanation)
            trust.gate_details(check)
    with tabs["Export"]:
        if tabs["Export"].open:
            export_panel(drawn, explanation, case, model, checks)
            draw_choice = functools.partial(report_map, base, image, model, case_image, case_key, explanation, settings)
            case_report_export.report_downloads(drawn, explanation, case, model, check, view, draw_choice, word,
                                                text, widget_key)
    header_panels(image, image_sha)


def overlay_controls(explanation) -> dict:
    with st.expander("Overlay", expanded=False):
        show_regions = st.checkbox("Region boxes", value=True, key="regions-show", disabled=not explanation.regions)
        top = len(explanation.regions)
        if top > 1:
            top = st.slider("Top regions shown", 1, top, top, key="regions-top")
        return {"show_regions": show_regions and bool(explanation.regions), "top": top,
                "box_opacity": st.slider("Box opacity", 0.1, 1.0, 0.9, 0.05),
                "heat_opacity": st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05),
                **trust.map_settings(explanation)}


@dataclass
class DrawnOverlay:
    image: object  # the displayed picture (PIL)
    caption: str  # what the picture shows, for the line under it
    colour_bar: tuple | None  # (MapScale, title) when a heat map is painted
    record: dict  # what the export says about the map


def chosen_map(explanation, word, phrase, text) -> tuple:
    """(grid map, what it is) for the phrase, else the chosen word, else (None, "")."""
    if phrase is not None:
        return phrase_map(phrase), f"the phrase '{text.strip()}'"
    if word is not None:
        return word_map(explanation, word), f"the word '{explanation.words[word].text}' (word {word + 1})"
    return None, ""


def report_map(base, image: LoadedImage, model: LRCLRModel, case_image, case_key, explanation, settings: dict,
               word: int | None, text: str | None) -> tuple[str, DrawnOverlay]:
    """A word's or phrase's map for the case report, drawn by the viewer's rules (its scale, the
    specificity check), without region boxes; with what it is a map of."""
    phrase = phrase_explanation(model, case_image, case_key, text)
    grid_map, what = chosen_map(explanation, word, phrase, text)
    return what, overlay(base, image, model, case_image, case_key, explanation, {**settings, "show_regions": False},
                         grid_map, what, None)


def overlay(base, image: LoadedImage, model: LRCLRModel, case_image, case_key, explanation, settings: dict,
            grid_map, what: str, rank) -> DrawnOverlay:
    """The displayed picture: the heat map (unless it does not depend on the text), region boxes,
    the chosen region; with the map's scale on a colour bar."""
    shown, caption, colour_bar, record = base, "no heat map (choose a report word or type a phrase)", None, {}
    if grid_map is not None:
        scale = trust.scale_for(grid_map, explanation, settings["fixed_scale"])
        specific = trust.specificity(model, case_image, case_key, grid_map)
        record = {"map_of": what, "values": [float(grid_map.min()), float(grid_map.max())],
                  "scale": dataclasses.asdict(scale), "specificity": dataclasses.asdict(specific)}
        if specific.specific:
            shown = viz.overlay_heatmap(base, grid_map, explanation.letterbox, settings["heat_opacity"], scale)
            kind = "attention" if explanation.regions else "similarity"
            colour_bar = (scale, f"{kind} ({'fixed' if scale.fixed else 'this map'})")
            caption = (f"heat map of {what}: values {grid_map.min():.3f} to {grid_map.max():.3f}"
                       + (f", attention at or below the uniform {scale.floor:.3f} not painted" if scale.floor else ""))
        else:
            caption = (f"no heat map: the map of {what} does not depend on the text here (it correlates "
                       f"{specific.correlation_with_reference:.2f} with this image's mean map over 10 reference "
                       f"finding phrases; above {specific.threshold:.2f} it is the image's map, not the phrase's)")
    # The caption is the overlay's legend: each thing drawn says what it is and which tab chose it
    # (a word, a region and the boxes can be on screen at once, issue #19).
    if settings["show_regions"] and explanation.regions:
        shown = viz.draw_regions(shown, explanation, set(range(1, settings["top"] + 1)),
                                 opacity=settings["box_opacity"])
        caption += f"; yellow boxes: the top {settings['top']} selected regions, numbered by rank"
    if rank is not None:
        shown = viz.highlight_region(shown, explanation, rank)
        caption += f"; cyan box: region {rank}, chosen in Regions"
    return DrawnOverlay(shown, caption, colour_bar, record)


page_frame = frame.begin()  # settings, sign-in, sidebar: before anything of this page
st.title("Review")
st.caption("Research tool for inspecting a model's reasoning. Not a medical device.")
picker, report_area = st.columns([2, 3])
with picker:
    chosen_case = choose_case("review", report_area.container())
if chosen_case is not None:
    review(chosen_case)
frame.end(page_frame)
