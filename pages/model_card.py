"""Model: what the loaded model is, what it was trained on, how well it does, and what it is not for.

Everything shown comes from the model itself: ``config.json`` (towers) and ``model_card.json``
(training data, commands, date, code version, evaluation results with ROC points). The bundled
models' cards supply the comparison columns when they were evaluated on the same data. Nothing is
recomputed except the localization examples, which run the loaded model on the gallery's phantoms.
Card values may come from a user's folder: they go into tables, code blocks and st.json, never
into Markdown or HTML (plotly labels are HTML-escaped). The tables and figures are built in
``lrclr.trust.card_tables`` and ``lrclr.display.figures``; this page lays them out.
"""

from __future__ import annotations

import streamlit as st

from lrclr.display import figures as viz
from lrclr.trust.card_tables import (auc_frame, card_facts, evaluation_title, evaluations, limits_lines, macro_summaries,
                               paired_intervals, read_cards, same_evaluation, side_table)
from lrclr.escaping import markdown_literal
from lrclr.trust.map_checks import peak_cells
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.findings import finding_phrase
from lrclr.trust.case_findings import phrase_map
from lrclr.bundled import BUNDLED_MODELS_DIR
from pages.parts.case_source import gallery
from pages.parts.shared import cached, current_model, encode_case, model_key
from pages.parts import frame

BUNDLED_DIR = BUNDLED_MODELS_DIR

INTENDED_USE = """
**Intended use.** Research and teaching: inspecting how a CLIP-style image-report model with region
selection (LRCLR) reasons about chest radiographs and their reports, flagging bad region-word
matches, and comparing it with a global-only baseline trained on identical data.

**Not a medical device.** Not cleared or validated for diagnosis, triage or any clinical decision.
Scores are zero-shot similarities between the image and short prompts; where this model's card
holds a calibration, they are mapped to probabilities fitted on cross-validation, which describe
the 421-image NIH sample they were fitted on, not your patients.
"""

TRAIN_YOUR_OWN = """
Copy `train/configs/baseline-nih.json` and `train/configs/lrclr-nih.json` and point their
`"dataset"` at your data (keep or drop `"extra_train"`, the phantoms mixed into training), e.g.
`{"kind": "mimic", "root": "/data/mimic-cxr-jpg", "reports_root": "/data/mimic-cxr-reports"}` for
MIMIC-CXR, or `{"kind": "chexpert", "csv_path":
"/data/chexpert/train.csv", "report_column": ["section_findings", "section_impression"]}` for
CheXpert Plus (see `train/datasets/`). Train the baseline, export it, and point the LRCLR config's
`"init_from"` at that folder (the README lists the commands). With a validation split of your own,
set `"split_fractions"` (e.g. `[0.8, 0.1, 0.1]`); `python -m train cross-validate` measures a recipe
on small data. On a GPU drop `freeze`, `cache_frozen_towers` and `image_tower_tail_blocks` to
fine-tune everything; `torchrun --nproc_per_node N -m train ...` uses several GPUs. Then list the
exported folder under `[models]` in the deployment settings (README, "Shared deployments"), or start
the server with `LRCLR_MODEL` set to it, and choose it in the sidebar's **Model** list.
"""


@st.cache_data(show_spinner=False)
def bundled_cards() -> list[dict]:
    return read_cards(BUNDLED_DIR)


def at_a_glance(model: LRCLRModel) -> None:
    """The headline numbers first: a radiologist should not have to scroll to learn the model is weak."""
    lines = macro_summaries(evaluations(model.model_card, bundled_cards()))
    lines.append("Research software, not a medical device: scores are zero-shot similarities, not diagnoses.")
    st.info("\n\n".join(markdown_literal(line) for line in lines))


def card_section(model: LRCLRModel) -> None:
    facts = card_facts(model)
    st.dataframe(facts, hide_index=True, width="stretch", height=35 * (len(facts) + 1) + 3)
    st.caption("Switch models with the sidebar's **Model** list: the bundled ones are below; a deployment "
               "lists any other folder with config.json, model.safetensors and model_card.json in its settings.")
    st.code("\n".join(str(p.parent) for p in sorted(BUNDLED_DIR.glob("*/model_card.json"))), language=None)
    commands = [("training", model.model_card.get("training_command"))]
    commands += [(f"evaluation: {name}", entry.get("command")) for name, entry in
                 (model.model_card.get("metrics") or {}).items() if isinstance(entry, dict)]
    for what, command in commands:
        if command:
            st.text(f"Command ({what}):")
            st.code(str(command), language="bash", wrap_lines=True)
    with st.expander("The full model card (model_card.json)"):
        st.json(model.model_card, expanded=1)


def evaluation_section(model: LRCLRModel) -> None:
    found = evaluations(model.model_card, bundled_cards())
    if not found:
        st.info("This model's card holds no evaluation. `python -m train evaluate ... --card-key NAME` computes "
                "one and stores it in the card.")
        return
    titles = [markdown_literal(evaluation_title(model.model_card, name)) for name in found]
    for tab, (name, entries) in zip(st.tabs(titles), found.items()):
        with tab:
            evaluation_tab(model, name, entries)


def evaluation_tab(model: LRCLRModel, name: str, entries: list[tuple[str, dict]]) -> None:
    dataset = (model.model_card["metrics"][name].get("dataset") or {})
    spec = dataset.get("spec") or {}
    st.text(f"Data: {spec.get('kind', '?')} dataset, split {dataset.get('split') or 'all'}, "
            f"{dataset.get('n_samples', '?')} images. Compared: {', '.join(label for label, _ in entries)}.")
    st.subheader("Zero-shot AUC with 95% bootstrap intervals")
    other = next((c for c in bundled_cards() if same_evaluation(model.model_card, c, name) is not None), None)
    frame = auc_frame(entries, paired_intervals(model.model_card, other, name) if other else None)
    undefined = frame["finding"][frame[[f"AUC · {label}" for label, _ in entries]].isna().all(axis=1)].tolist()
    st.dataframe(frame[~frame["finding"].isin(undefined)], hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in frame.columns
                                if c.startswith("AUC")})
    if undefined:
        st.caption(markdown_literal(f"No AUC for {', '.join(undefined)}: these images hold no positive "
                                    "(or no negative) case of it."))
    st.subheader("ROC curves")
    findings = [str(f.get("finding")) for f in entries[0][1].get("findings") or []]
    finding = st.selectbox("Finding", findings, key=f"roc-{name}") if findings else None
    figure = viz.roc_figure(entries, finding) if finding else None
    if figure is None:
        st.info("This card stores no ROC points for this evaluation (re-run `python -m train evaluate`).")
    else:
        st.plotly_chart(figure, key=f"roc-chart-{name}", config={"displaylogo": False})
        counts = next((f for f in entries[0][1]["findings"] if str(f.get("finding")) == finding), {})
        st.caption(f"{counts.get('n_positive', '?')} positive and {counts.get('n_negative', '?')} negative images: "
                   "with so few positives the curve moves in big steps and the interval is wide.")
    by_k = lambda recall: sorted(recall.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0)
    retrieval = side_table(entries, "retrieval", ("direction", "n"), lambda r: by_k(r.get("recall") or {}))
    numbers = {label: st.column_config.NumberColumn(label, format="%.3f") for label, _ in entries}
    if not retrieval.empty:
        st.subheader("Retrieval (recall@k)")
        st.dataframe(retrieval, hide_index=True, width="stretch", column_config=numbers)
    localization = side_table(entries, "localization", ("finding", "map_kind", "n"),
                              lambda r: [("pointing game", r.get("pointing_game")), ("IoU", r.get("mean_iou")),
                                         ("pointing game ceiling", r.get("pointing_game_ceiling"))])
    if not localization.empty:
        st.subheader("Localization on masks")
        tolerance = (model.model_card["metrics"][name].get("result") or {}).get("settings", {}).get("pointing_tolerance_px")
        st.caption("Pointing game: the share of (image, finding) pairs whose map peaks inside the finding's mask"
                   + (f" or within {tolerance:g} px of it" if tolerance else "") + ". Its ceiling is what a "
                   "perfect map could score: the peak sits at a grid cell's centre, and a mask thinner than a "
                   "cell may hold no cell centre.")
        st.dataframe(localization.rename(columns={"k": "measure"}), hide_index=True, width="stretch",
                     column_config=numbers)


def localization_examples(model: LRCLRModel) -> None:
    phantoms = {case.id: case for case in gallery() if case.mask_findings}
    if not phantoms:
        st.info("The demo gallery has no phantom with ground-truth masks.")
        return
    left, right = st.columns(2)
    case = phantoms[left.selectbox("Phantom", list(phantoms), format_func=lambda i: phantoms[i].title,
                                   key="card-phantom")]
    finding = right.selectbox("Finding", case.mask_findings, key=f"card-finding-{case.id}")
    phrase = finding_phrase(finding)  # the phrase train evaluate's pointing game grounds
    image = cached("card-image", (case.id,), case.load_image)
    image_sha = case.image_sha256
    case_image = encode_case(model, model_key(model), image_sha, image)
    grid_map = cached("card-map", (model_key(model), image_sha, phrase),
                      lambda: phrase_map(model.explain(case_image, phrase, findings=())))
    mask = case.mask(finding)
    valid = case_image.features.valid[0].cpu().numpy().reshape(grid_map.shape)
    # The pointing game's own peak rule (the upsampled map's argmax drifts to the border).
    peak_y, peak_x = case_image.letterbox.cell_centre(*peak_cells(grid_map, valid)[0], grid_map.shape)
    st.plotly_chart(viz.localization_figure(image, grid_map, case_image.letterbox, mask, (peak_x, peak_y), phrase),
                    key="card-localization", config={"displaylogo": False})
    hit = "inside" if mask[peak_y, peak_x] else "outside"
    st.caption(markdown_literal(f"Left: the model's map for the phrase '{phrase}' (its peak marked ×). Right: the "
                                f"phantom's ground-truth {finding} mask. The peak falls {hit} the mask (one case "
                                f"of the pointing game)."))


def model_page() -> None:
    model = current_model()
    if model is None:
        st.warning("No model is loaded (see the sidebar).")
        return
    at_a_glance(model)
    st.header("The model card")
    card_section(model)
    st.header("Intended use and limits")
    st.markdown(INTENDED_USE)
    for line in limits_lines(model.model_card):
        st.markdown(markdown_literal(line))
    st.header("How well it does")
    evaluation_section(model)
    st.header("Localization examples")
    localization_examples(model)
    st.header("Training on your own data (MIMIC-CXR, CheXpert)")
    st.markdown(TRAIN_YOUR_OWN)


page_frame = frame.begin()  # settings, sign-in, sidebar: before anything of this page
st.title("Model")
st.caption("What the model loaded in the sidebar is, what it was trained on and how well it does. "
           "Research software, not a medical device.")
model_page()
frame.end(page_frame)
