"""The Review page's trust panels: the findings table with its evidence, the input gate, the map
checks (scale, specificity), counterfactual probes and the deletion test.

Layout only: the evidence comes from ``lrclr.trust.reliability`` / ``lrclr.trust.case_findings``, the checks from
``lrclr.imaging.input_check``, ``lrclr.trust.map_checks``, ``lrclr.trust.counterfactual`` and ``lrclr.trust.faithfulness``.
User text (typed findings, phrases) reaches widgets only through ``markdown_literal`` or as data.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from lrclr.display import figures as viz
from lrclr.trust.counterfactual import probe_phrases
from lrclr.trust.faithfulness import DEFAULT_REPEATS, deletion_test
from lrclr.imaging.input_check import InputCheck, InputReference, check_input
from lrclr.trust.map_checks import phrase_specificity, reference_maps
from lrclr.findings import parse_finding_list
from lrclr.escaping import markdown_literal
from lrclr.trust.case_findings import finding_rows
from lrclr.trust.findings_table import findings_legend, findings_table, probability_text
from lrclr.trust.reliability import trained_on_whole_sample
from pages.parts.shared import cached
from pages.parts.widget_state import hold, in_range

GREY = "color: #9e9e9e"
DISCORDANT = "background-color: rgba(214, 39, 40, 0.25)"


def input_gate(model, image, case_image) -> InputCheck:
    """The gate's verdict for this case (cheap: image statistics and one distance)."""
    embedding = case_image.features.global_embedding[0].float().cpu().numpy()
    return check_input(InputReference.from_card(model.model_card), image.pixels, embedding, image.header,
                       image.colourfulness)


def gate_warning(check: InputCheck) -> str | None:
    """The input check's warning (the page and the case report say the same), or None."""
    if check.passed:
        return None
    return (f"This does not look like a frontal chest radiograph: {'; '.join(check.reasons)}. The scores below "
            "are greyed: the model was never validated on images like this.")


def show_gate(check: InputCheck) -> None:
    if (warning := gate_warning(check)) is not None:
        st.warning(markdown_literal(warning))


EXTRA_FINDINGS = "extra-findings"


def seen_in_training(model, case) -> str | None:
    """A demo NIH case the loaded model trained on is not held-out evidence: the note that says so."""
    if case.demo is not None and case.demo.kind == "nih" and trained_on_whole_sample(model.model_card):
        return ("This demo image is one of the NIH sample images this model was trained on, so its scores here "
                "are not held-out evidence. The card's AUCs come from cross-validation, where every image was "
                "scored by a model that never saw it.")
    return None


def seen_in_training_note(model, case) -> None:
    if (note := seen_in_training(model, case)) is not None:
        st.info(note)


def extra_findings_input() -> None:
    """The box for findings the user types to be scored beside the card's (any name; names the card
    does not validate say so). Read with ``extra_findings`` (also while the tab is closed)."""
    st.text_input("Score more findings (comma-separated)", key=EXTRA_FINDINGS, max_chars=300,
                  placeholder="e.g. rib fracture, Support Devices")


def extra_findings(text: str | None) -> list[str]:
    try:
        return parse_finding_list(text) if text and text.strip() else []
    except ValueError:
        return []


def findings_panel(explanation, model, check: InputCheck) -> float:
    """The table (every row visible), its evidence caption and the bars; returns the fallback threshold."""
    hold("findings-threshold", 0.5, in_range(0.05, 0.95))
    threshold = st.slider("Fallback threshold (findings without an operating point)", 0.05, 0.95, step=0.05,
                          key="findings-threshold",
                          help="Each validated finding is called at the operating point chosen for it on "
                               "cross-validation (the model card). Only findings without one use this value.")
    rows = finding_rows(explanation, threshold, model.model_card)
    # Four columns fit the panel without a horizontal scroll; the export has every field of each row.
    table = findings_table(rows)  # the case report prints the same table
    greyed = not check.passed

    reliable = {r.finding: r.reliable for r in rows}
    discordant = {r.finding: bool(r.discordance) for r in rows}

    def style(row):
        colour = GREY if greyed or not reliable[row["finding"]] else ""
        background = DISCORDANT if discordant[row["finding"]] and not greyed else ""
        return [";".join(x for x in (colour, background) if x)] * len(row)

    styled = table.style.apply(style, axis=1).format({"probability": probability_text})
    # Every row visible: no inner scroll, so no positive finding of the report is ever out of view.
    # Pixel widths: the panel is about 440 px wide at 1600 px, and every column must fit in it.
    columns = {"finding": st.column_config.TextColumn(width=118),
               "probability": st.column_config.NumberColumn(width=74),
               "called": st.column_config.TextColumn(width=70),
               "AUC (95% CI)": st.column_config.TextColumn(width=110)}
    st.dataframe(styled, hide_index=True, width="stretch", height=35 * (len(table) + 1) + 3, column_config=columns)
    evidence_caption(model.model_card, rows, explanation)
    st.plotly_chart(viz.findings_bar_figure([(r.finding, r.probability, bool(r.discordance), r.threshold, r.reliable)
                                             for r in rows], greyed=greyed), key="findings-bars")
    return threshold


def evidence_caption(card: dict, rows, explanation) -> None:
    st.caption(markdown_literal(" ".join(findings_legend(card, rows, bool(explanation.report.strip())))))


# ---- maps ------------------------------------------------------------------------------------


def map_settings(explanation) -> dict:
    fixed = st.toggle("Fixed colour scale", key="map-fixed-scale",
                      help="Off: the colours span this map's own values. On: attention 0-1 and similarity -1 to 1 on "
                           "every case, so the same colour means the same value everywhere.")
    return {"fixed_scale": fixed}


def scale_for(grid_map: np.ndarray, explanation, fixed: bool) -> viz.MapScale:
    """Attention (LRCLR) is dimmed below a uniform spread over the regions; similarity is not."""
    if explanation.regions:
        return viz.map_scale(grid_map, "attention", fixed, uniform=1 / len(explanation.regions))
    return viz.map_scale(grid_map, "similarity", fixed)


def specificity(model, case_image, case_key: tuple, grid_map: np.ndarray):
    """Is this map the phrase's, or the case's whatever the phrase? (reference maps cached per case)."""
    maps = cached("reference-maps", case_key, lambda: reference_maps(model, case_image))
    valid = case_image.features.valid[0].cpu().numpy().reshape(case_image.features.grid)
    return phrase_specificity(grid_map, maps, valid)


# ---- counterfactuals and the deletion test ---------------------------------------------------


def counterfactual_panel(model, case_image, case_key: tuple, phrase: str | None, base, image, settings) -> dict | None:
    """One click: the phrase, its negation and its mirror side by side; returns the export record."""
    if not phrase or not phrase.strip():
        st.caption("Type a phrase above to probe how its score and map move when it is negated or its side swapped.")
        return None
    key = (case_key, phrase.strip())
    if st.button("Probe: negate it and swap its side", key="counterfactual-run"):
        st.session_state["counterfactual-key"] = key
    if st.session_state.get("counterfactual-key") != key:
        return None
    probes = cached("counterfactual", key, lambda: probe_phrases(model, case_image, phrase))
    panels = [("original", probes.original), *((e.kind, e.probe) for e in probes.edits)]
    # One fixed scale for all panels: side by side, the same colour must mean the same value.
    kind = "attention" if model.interaction is not None else "similarity"
    uniform = 1 / model.config.num_regions if model.interaction is not None else None
    scale = viz.map_scale(np.stack([p.grid_map for _, p in panels]), kind, fixed=False, uniform=uniform)
    for column, (what, probe) in zip(st.columns(len(panels)), panels):
        picture = viz.overlay_heatmap(base, probe.grid_map, case_image.letterbox, 0.6, scale,
                                      settings.get("orientation"))
        column.image(picture, width="stretch")
        column.caption(markdown_literal(f"{what}: '{probe.phrase}' · similarity {probe.similarity:+.2f} · "
                                        f"{probe.patient_left_share:.0%} of the map on the patient's left"))
    table = pd.DataFrame({
        "edit": [e.kind for e in probes.edits],
        "phrase": [e.probe.phrase for e in probes.edits],
        "Δ similarity": [e.similarity_change for e in probes.edits],
        "map correlation": [e.map_correlation for e in probes.edits],
        "Δ share on patient's left": [e.left_share_change for e in probes.edits],
    })
    st.dataframe(table.style.format({c: "{:+.3f}" for c in table.columns[2:]}), hide_index=True, width="stretch")
    st.caption("Changes are the edited phrase minus the original; map correlation is with the original's map. A "
               "model that reads the words moves the similarity when the phrase is negated and the map when "
               "its side is swapped; a map correlation near 1 means the edit changed nothing on screen. The "
               f"maps share one colour scale ({scale.low:.3f} to {scale.high:.3f}).")
    return probes.to_dict()


def deletion_panel(model, image, case_image, case_key: tuple, grid_map: np.ndarray | None, what: str,
                   explanation) -> dict | None:
    """Blank the shown map's top-k cells and k random ones; both drops per finding."""
    if grid_map is None and explanation.regions:
        # No word or phrase chosen: the map is the selector's own ranking of the regions.
        grid_map = np.zeros(explanation.grid, dtype=np.float32)
        for region in explanation.regions:
            grid_map[region.cell] = len(explanation.regions) + 1 - region.rank
        what = "the selected regions, by rank"
    if grid_map is None:
        st.info("Choose a report word or type a phrase: the test blanks the cells that map ranks highest.")
        return None
    valid = case_image.features.valid[0].cpu().numpy().reshape(case_image.features.grid)
    k = st.slider("Cells to blank (k)", 1, min(16, int(valid.sum())), 4, key="deletion-k")
    key = (case_key, what, k, grid_map.tobytes())
    if st.button("Run the deletion test", key="deletion-run"):
        st.session_state["deletion-key"] = key
    if st.session_state.get("deletion-key") != key:
        st.caption(markdown_literal(f"Blanks the top {k} cells of {what} (filled with the image's median), re-scores, "
                                    f"and compares with blanking {k} random content cells ({DEFAULT_REPEATS} repeats)."))
        return None
    findings = [f.finding for f in explanation.findings]
    result = cached("deletion", key, lambda: deletion_test(model, image.pixels, grid_map, valid, case_image.letterbox,
                                                           findings, k))
    table = pd.DataFrame({
        "finding": [f.finding for f in result.findings],
        "score": [f.score for f in result.findings],
        f"drop, top {k}": [f.top_cells_drop for f in result.findings],
        f"drop, random {k}": [f.random_drop for f in result.findings],
    })
    st.dataframe(table.style.format({c: "{:+.3f}" if "drop" in c else "{:.3f}" for c in table.columns[1:]}),
                 hide_index=True, width="stretch", height=35 * (len(table) + 1) + 3)
    verdict = ("the map's cells matter more than random ones: it earns some trust on this case"
               if result.map_earns_it else "the map's cells matter no more than random ones: on this case it is "
               "not evidence of where the model looks")
    st.caption(markdown_literal(f"Map: {what}. Drops: the score minus the score with the map's top {k} cells "
                                f"blanked, and the mean over {result.repeats} sets of {k} random content cells. "
                                f"Mean |drop|: top cells {np.mean([abs(f.top_cells_drop) for f in result.findings]):.3f}, "
                                f"random cells {np.mean([abs(f.random_drop) for f in result.findings]):.3f}; {verdict}."))
    return {"map": what, **dataclasses.asdict(result), "map_earns_it": result.map_earns_it}


def gate_details(check: InputCheck) -> None:
    st.caption("Input check: is this a frontal chest radiograph?")
    rows = {"verdict": "passes" if check.passed else "fails", **{k: f"{v:.3f}" for k, v in check.statistics.items()}}
    if check.embedding_distance is not None:
        rows["embedding distance (training images up to)"] = f"{check.embedding_distance:.2f} ({check.distance_threshold:.2f})"
    else:
        rows["embedding distance"] = "not checked: the model card holds no reference"
    st.dataframe(pd.DataFrame({"check": list(rows), "value": list(rows.values())}), hide_index=True, width="stretch")
    for reason in check.reasons:
        st.caption(markdown_literal(reason))


def gate_record(check: InputCheck) -> dict:
    return dataclasses.asdict(check)
