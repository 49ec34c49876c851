"""Review: open a case, see finding scores, the selected regions and which report words each answers to.

The image comes first, its display controls beside it and the analysis tabs on its other side;
the case picker (the demo gallery's thumbnails, or an upload) and the report sit below.

Layout only; everything computed comes from ``lrclr`` (model, review, viz). Encodings are cached so
that choosing a word, a region or a display setting only redraws.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from lrclr.display import figures as viz
from lrclr.errors import ImageReadError
from lrclr.escaping import markdown_literal
from lrclr.imaging.reading import LoadedImage, load_image
from lrclr.model.lrclr_model import CaseImage, LRCLRModel
from lrclr.findings import NIH_FINDINGS
from lrclr.trust.case_findings import (
    distinct_labels,
    phrase_map,
    sha256_hex,
    word_map,
)
from pages.parts import case_panels, case_report_export, frame, measure
from pages.parts import review_trust as trust
from pages.parts.case_panels import header_panels, identifiers_key
from pages.parts.case_source import CaseInput, case_navigation, choose_case
from pages.parts.shared import cached, current_model, current_settings, encode_case, image_bytes, model_is_loading, model_key
from pages.parts.viewer_controls import (
    SHORTCUTS,
    ViewSettings,
    base_image,
    display_options,
    view_controls,
    view_key,
    zoom_revision,
)
from pages.parts.widget_state import hold, in_range


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




def viewer_height(size: tuple[int, int]) -> int:
    """The figure's height for a picture of ``size``: about the viewer column's width (~480 px at
    1600 px with the sidebar open) times the aspect, within what fits under 1000 px."""
    return int(min(760, max(420, round(500 * size[1] / size[0]))))


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


def review(case: CaseInput) -> None:
    """The case's row: display controls, the viewer and the analysis tabs, side by side."""
    image_sha = sha256_hex(case.data)  # once per run: a DICOM can be megabytes
    image = read_image(case, image_sha, bool(st.session_state.get(identifiers_key(image_sha), False)))
    if image is None:
        return
    controls, viewer, panels = st.columns([1.3, 2.9, 2.8], gap="small")
    chart_slot = viewer.empty()
    spacing = measure.spacing(image, case.demo)
    with controls:
        page_heading(case, image)
        view = view_controls(image, image_sha)
        tool = measure.tool()
        measure.summary(view_key(image_sha), spacing)
        display_options()
        st.caption(f"Keys: N / P next / previous case · I invert · H flip · T rotate · {SHORTCUTS['reset']} reset. "
                   "Research tool for inspecting a model's reasoning. Not a medical device.")
    base = base_image(image, image_sha, view)
    viewed = Viewed(image, image_sha, view, base, spacing, tool)
    if model_is_loading():
        # The radiograph can be read while the weights load; the overlay replaces it when they are in.
        with chart_slot.container():
            draw_viewer(viewed, DrawnOverlay(base, "loading the model…", None, {}), None, 0, loading=True)
    model = current_model()
    if model is None:
        chart_slot.image(base, caption=f"{image.original_size[0]}x{image.original_size[1]} px")
        panels.warning("No model is loaded (see the sidebar), so only the image is shown.")
        with viewer:
            header_panels(image, image_sha)
        return
    analyse(case, viewed, model, chart_slot, viewer, panels)


@dataclass(frozen=True)
class Viewed:
    """The case as the viewer shows it: the image, its display settings and the picture drawn."""

    image: LoadedImage
    image_sha: str
    view: ViewSettings
    base: object  # the windowed, oriented picture (PIL) the overlays go on
    spacing: object  # lrclr.display.measurements.Spacing, or None: lengths in pixels
    tool: str | None  # the measuring tool a drag uses, or None: a drag pans


def page_heading(case: CaseInput, image: LoadedImage) -> None:
    """The page's title and the open case, above the controls (the image itself starts the page)."""
    st.title("Review")
    name = case.demo.title if case.demo is not None else "Uploaded image"  # never the file's name
    with st.container(key="review-case-title"):
        st.markdown(f"**{markdown_literal(name)}** · {image.original_size[0]}x{image.original_size[1]} px")
    case_navigation("review")


def draw_viewer(viewed: Viewed, drawn: "DrawnOverlay", explanation, regions_drawn: int, loading: bool = False) -> None:
    """The zoomable image with its overlay and measurements, and the line that says what it shows.
    ``loading``: the picture shown while the model loads, replaced in the same run (so no key)."""
    image, view = viewed.image, viewed.view
    ckey = view_key(viewed.image_sha)
    measure.remember_geometry(ckey, drawn.image.size, image.original_size, view.orientation)
    figure = viz.viewer_figure(drawn.image, explanation, regions_drawn, height=viewer_height(drawn.image.size),
                               view_revision=zoom_revision(viewed.image_sha), lossless=view.full_resolution,
                               colour_bar=drawn.colour_bar, orientation=view.orientation,
                               marks=measure.marks(ckey, viewed.spacing, image.original_size),
                               dragmode=measure.dragmode(viewed.tool),
                               selection_revision=st.session_state.get("measure-selection-revision", 0))
    config = {"scrollZoom": True, "displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
    if loading:
        st.plotly_chart(figure, theme=None, config=config)
    else:
        st.plotly_chart(figure, key=measure.CHART_KEY, on_select=measure.on_drag, selection_mode=("box",),
                        theme=None, config=config)
    how = (("drag to measure" if viewed.tool else "drag to pan") + ", right- or ctrl-drag to window, scroll to "
           "zoom, double-click to fit")
    oriented = f" · display {view.orientation.describe()}" if not view.orientation.is_identity else ""
    st.caption(markdown_literal(f"{image.original_size[0]}x{image.original_size[1]} px · {drawn.caption} · "
                                f"{view.window_text()}{oriented} · {how}"))


def analyse(case: CaseInput, viewed: Viewed, model: LRCLRModel, chart_slot, viewer, panels) -> None:
    image, image_sha, base = viewed.image, viewed.image_sha, viewed.base
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
        tabs, word, rank, text, phrase = analysis_tabs(model, case, case_image, case_key, explanation, check,
                                                       widget_key)
    with viewer:
        settings = {**overlay_controls(explanation), "orientation": viewed.view.orientation}
    grid_map, what = chosen_map(explanation, word, phrase, text)
    drawn = overlay(base, image, model, case_image, case_key, explanation, settings, grid_map, what, rank)
    checks["map"] = drawn.record
    with chart_slot.container():
        draw_viewer(viewed, drawn, explanation, settings["top"] if settings["show_regions"] else 0)
    with viewer:
        case_panels.mask_comparison(case, image, drawn.image, viewed.view.orientation)
        header_panels(image, image_sha)
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
            extra = {"measurements": measure.records(view_key(image_sha), viewed.spacing),
                     "display": case_report_export.display_record(viewed.view)}
            case_report_export.export_panel(drawn, explanation, case, model, checks, extra)
            draw_choice = functools.partial(report_map, base, image, model, case_image, case_key, explanation, settings)
            case_report_export.report_downloads(drawn, explanation, case, model, check, viewed.view, draw_choice,
                                                word, text, widget_key)


def analysis_tabs(model, case, case_image, case_key, explanation, check, widget_key: str):
    """The tabs beside the image; only the open one is drawn (choosing a tab reruns the page): a
    report's word and region buttons cost the browser more than the rest of a new case together
    (BENCHMARKS.md). Returns the tabs and what they chose (kept while their tab is closed)."""
    trust.show_gate(check)
    trust.seen_in_training_note(model, case)
    if explanation.report_truncated:
        st.warning("The report is longer than the model reads; words past the limit are not grounded.")
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
    return tabs, word, rank, text, phrase


def overlay_controls(explanation) -> dict:
    """Region boxes and heat map settings, under the image (each value held: see widget_state)."""
    count = len(explanation.regions)
    hold("regions-show", True)
    hold("regions-box-opacity", 0.9, in_range(0.1, 1.0))
    hold("regions-heat-opacity", 0.5, in_range(0.0, 1.0))
    with st.expander("Overlay", expanded=False):
        show_regions = st.checkbox("Region boxes", key="regions-show", disabled=not explanation.regions)
        top = count
        if count > 1:
            hold("regions-top", count, in_range(1, count))
            top = st.slider("Top regions shown", 1, count, key="regions-top")
        return {"show_regions": show_regions and bool(explanation.regions), "top": top,
                "box_opacity": st.slider("Box opacity", 0.1, 1.0, step=0.05, key="regions-box-opacity"),
                "heat_opacity": st.slider("Heatmap opacity", 0.0, 1.0, step=0.05, key="regions-heat-opacity"),
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
    orientation = settings.get("orientation")  # base is the flipped/rotated display: the overlays turn with it
    if grid_map is not None:
        scale = trust.scale_for(grid_map, explanation, settings["fixed_scale"])
        specific = trust.specificity(model, case_image, case_key, grid_map)
        record = {"map_of": what, "values": [float(grid_map.min()), float(grid_map.max())],
                  "scale": dataclasses.asdict(scale), "specificity": dataclasses.asdict(specific)}
        if specific.specific:
            shown = viz.overlay_heatmap(base, grid_map, explanation.letterbox, settings["heat_opacity"], scale,
                                        orientation)
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
                                 opacity=settings["box_opacity"], orientation=orientation)
        caption += f"; yellow boxes: the top {settings['top']} selected regions, numbered by rank"
    if rank is not None:
        shown = viz.highlight_region(shown, explanation, rank, orientation)
        caption += f"; cyan box: region {rank}, chosen in Regions"
    return DrawnOverlay(shown, caption, colour_bar, record)


page_frame = frame.begin()  # settings, sign-in, sidebar: before anything of this page
# The image is the first thing on the page, its controls beside it; the case picker and the report
# below (at 1600x1000 the image started ~640 px down, issue #19). The picker runs first (the case
# depends on it) but draws into the lower slot.
case_row, picker_row = st.container(), st.container()
with picker_row:
    st.divider()
    gallery_area, report_area = st.container(), st.container()  # the thumbnails take the page's width
    with gallery_area:
        chosen_case = choose_case("review", report_area)
with case_row:
    if chosen_case is not None:
        review(chosen_case)
    else:
        st.title("Review")
        st.caption("Research tool for inspecting a model's reasoning. Not a medical device.")
frame.end(page_frame)
