"""Model: what the loaded model is, what it was trained on, how well it does, and what it is not for.

Everything shown comes from the model itself: ``config.json`` (towers) and ``model_card.json``
(training data, commands, date, code version, evaluation results with ROC points). The bundled
models' cards supply the comparison columns when they were evaluated on the same data. Nothing is
recomputed except the localization examples, which run the loaded model on the gallery's phantoms.
Card values may come from a user's folder: they go into tables, code blocks and st.json, never
into Markdown or HTML (plotly labels are HTML-escaped).
"""

from __future__ import annotations

import base64
import html
import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from lrclr import viz
from lrclr.explain import grid_to_image
from lrclr.model import LRCLRModel
from lrclr.review import markdown_literal, phrase_map
from lrclr.weights import DEFAULT_MODEL_DIR
from app_pages.case_source import gallery
from app_pages.shared import cached, current_model, encode_case, model_key, training_data_summary

BUNDLED_DIR = DEFAULT_MODEL_DIR.parent
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")

INTENDED_USE = """
**Intended use.** Research and teaching: inspecting how a CLIP-style image-report model with region
selection (LRCLR) reasons about chest radiographs and their reports, flagging bad region-word
matches, and comparing it with a global-only baseline trained on identical data.

**Not a medical device.** Not cleared or validated for diagnosis, triage or any clinical decision.
Scores are zero-shot similarities between the image and short prompts, not calibrated risks.

**Limits of the bundled models.** They were trained in minutes on a 2-core CPU from a 421-image
sample of NIH ChestX-ray14 with reports composed from OpenI sentences (no real report for any of
those images) and 340 synthetic phantoms, with the text tower frozen. Their held-out AUCs are low
(LRCLR macro 0.58 on 43 test images) and their intervals are wide (1-8 positives per finding):
they demonstrate the tool, they are not a classifier. Heat maps show where the model attends, not
where disease is. LRCLR was taught where findings are on synthetic phantoms only: on held-out
phantoms its attention peaks within 15 px of the finding in 88% of cases (inside it in 52%), but
nothing has measured this on real radiographs.
"""

TRAIN_YOUR_OWN = """
Copy `train/configs/baseline-nih.json` and `train/configs/lrclr-nih.json` and point their
`"dataset"` at your data (keep or drop `"extra_train"`, the phantoms mixed into training), e.g.
`{"kind": "mimic", "root": "/data/mimic-cxr-jpg", "reports_root": "/data/mimic-cxr-reports"}` for
MIMIC-CXR, or `{"kind": "chexpert", "csv_path":
"/data/chexpert/train.csv", "report_column": ["section_findings", "section_impression"]}` for
CheXpert Plus (see `train/datasets/`). On a GPU drop `freeze`, `cache_frozen_towers` and
`image_tower_tail_blocks` to fine-tune everything; `torchrun --nproc_per_node N -m train ...` uses
several GPUs. Then put the exported folder in the sidebar's **Model folder**.
"""


# ---- what the card holds -------------------------------------------------------------------------


def card_facts(model: LRCLRModel) -> pd.DataFrame:
    """The card's headline facts and the towers from config.json, as (field, value) text rows."""
    card, config = model.model_card, model.config
    tower = lambda t: f"{t.kind} ({t.source or 'built in'})"
    kind = (f"LRCLR: top-{config.num_regions} region selection + {config.interaction_layers} interaction layer(s)"
            if config.use_regions else "global-only baseline (CLIP-style, no region selection)")
    seconds = card.get("training_seconds")
    facts = {
        "model id": card.get("model_id"), "kind": kind, "image tower": tower(config.image_tower),
        "text tower": tower(config.text_tower), "input size": f"{config.image_size} px, embedding {config.embed_dim}",
        "training data": training_data_summary(card.get("training_data"), card.get("extra_training_data")),
        "training steps": card.get("steps"),
        "training time": f"{seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else seconds,
        "trained on": card.get("hardware"), "saved": card.get("saved"), "code version": card.get("code_version"),
        "exported from": card.get("exported_from"), "seed": card.get("seed"),
        "running on": model.device_info.name,
    }
    return pd.DataFrame({"field": list(facts), "value": ["—" if v in (None, "") else str(v) for v in facts.values()]})


@st.cache_data(show_spinner=False)
def bundled_cards() -> list[dict]:
    cards = []
    for path in sorted(BUNDLED_DIR.glob("*/model_card.json")):
        try:
            cards.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a broken bundled card only loses its comparison column
    return cards


def model_label(card: dict, result: dict) -> str:
    return f"{card.get('model_id', '?')} ({'LRCLR' if result.get('uses_regions') else 'baseline'})"


def same_evaluation(card: dict, other: dict, name: str) -> dict | None:
    """``other``'s entry for evaluation ``name`` if it scored the same data as ``card``'s, else None."""
    entry, match = (card.get("metrics") or {}).get(name), (other.get("metrics") or {}).get(name)
    if other != card and isinstance(entry, dict) and isinstance(match, dict) \
            and match.get("dataset") == entry.get("dataset") and isinstance(match.get("result"), dict):
        return match
    return None


def evaluations(card: dict, others: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    """Per evaluation in the card: (label, result) for the loaded model, then for every other
    bundled model evaluated on the same dataset with the same command's data."""
    found = {}
    for name, entry in (card.get("metrics") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
            continue
        entries = [(model_label(card, entry["result"]), entry["result"])]
        for other in others:
            if (match := same_evaluation(card, other, name)) is not None:
                entries.append((model_label(other, match["result"]), match["result"]))
        found[name] = entries
    return found


def paired_intervals(card: dict, other: dict, name: str) -> dict[str, tuple[float, float]]:
    """Finding ("Macro mean" for the macro) -> 95% CI of AUC(card's model) - AUC(other's), from the
    paired bootstrap ``train evaluate`` stored under the models' evaluation names; {} if absent.

    The stored difference is the evaluation's first model minus the other, so loading the second
    model flips it: the interval of B - A is minus that of A - B, ends swapped."""
    entry, match = (card.get("metrics") or {}).get(name) or {}, same_evaluation(card, other, name) or {}
    own, theirs = entry.get("name"), match.get("name")
    pairs = entry.get("paired_differences") or {}
    # Keys as train.evaluate.pair_name writes them: "first - other".
    for key, sign in ((f"{own} - {theirs}", 1), (f"{theirs} - {own}", -1)):
        if own is None or theirs is None or not isinstance(pairs.get(key), list):
            continue
        intervals = {}
        for row in pairs[key]:
            low, high = _number(row.get("ci_low")), _number(row.get("ci_high"))
            if low is not None and high is not None:
                finding = "Macro mean" if row.get("finding") == "macro" else str(row.get("finding"))
                intervals[finding] = (low, high) if sign > 0 else (-high, -low)
        return intervals
    return {}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def auc_frame(entries: list[tuple[str, dict]], paired: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """One row per finding (then the macro mean): positives, negatives, AUC and 95% CI per model,
    and with two models their difference (with its paired CI when the card holds one)."""
    rows: dict[str, dict] = {}
    for label, result in entries:
        items = [*(result.get("findings") or []), {"finding": "Macro mean", **(result.get("macro") or {})}]
        for item in items:
            row = rows.setdefault(str(item.get("finding")), {"finding": str(item.get("finding")),
                                                              "positives": item.get("n_positive"),
                                                              "negatives": item.get("n_negative")})
            low, high = _number(item.get("ci_low")), _number(item.get("ci_high"))
            row[f"AUC · {label}"] = _number(item.get("auc"))
            row[f"95% CI · {label}"] = "—" if low is None or high is None else f"{low:.3f} – {high:.3f}"
    frame = pd.DataFrame(list(rows.values()))
    frame[["positives", "negatives"]] = frame[["positives", "negatives"]].astype("Int64")
    if len(entries) >= 2:
        first, second = (f"AUC · {label}" for label, _ in entries[:2])
        frame[f"AUC difference ({entries[0][0]} − {entries[1][0]})"] = frame[first] - frame[second]
        if paired:
            frame["95% CI of the difference (paired)"] = [
                f"{paired[f][0]:.3f} – {paired[f][1]:.3f}" if f in paired else "—" for f in frame["finding"]]
    return frame


def side_table(entries: list[tuple[str, dict]], key: str, columns: tuple[str, ...], value) -> pd.DataFrame:
    """Retrieval or localization rows keyed by ``columns``, one value column per model."""
    rows: dict[tuple, dict] = {}
    for label, result in entries:
        for item in result.get(key) or []:
            for sub_key, number in value(item):
                ident = (*(item.get(c) for c in columns), sub_key)
                row = rows.setdefault(ident, {c: item.get(c) for c in columns} | ({"k": sub_key} if sub_key else {}))
                row[label] = _number(number)
    return pd.DataFrame(list(rows.values()))


def roc_figure(entries: list[tuple[str, dict]], finding: str) -> go.Figure | None:
    """ROC curves of one finding from the cards' stored points (never recomputed or invented)."""
    figure = go.Figure()
    for colour, (label, result) in zip(COLOURS, entries):
        points = (result.get("roc") or {}).get(finding)
        if not isinstance(points, dict) or not points.get("fpr"):
            continue
        auc = next((_number(f.get("auc")) for f in result.get("findings") or [] if f.get("finding") == finding), None)
        name = html.escape(f"{label} · AUC {auc:.3f}" if auc is not None else label)
        figure.add_trace(go.Scatter(x=points["fpr"], y=points["tpr"], mode="lines", name=name,
                                    line={"color": colour, "width": 2.5},
                                    hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra></extra>"))
    if not figure.data:
        return None
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", hoverinfo="skip",
                                line={"color": "grey", "dash": "dot", "width": 1}))
    figure.update_layout(height=460, margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h", "y": -0.2},
                         title=html.escape(f"ROC: {finding}"),
                         xaxis={"title": "false positive rate (1 − specificity)", "range": [0, 1], "constrain": "domain"},
                         yaxis={"title": "true positive rate (sensitivity)", "range": [0, 1.01], "scaleanchor": "x"})
    return figure


# ---- layout --------------------------------------------------------------------------------------


def at_a_glance(model: LRCLRModel) -> None:
    """The headline numbers first: a radiologist should not have to scroll to learn the model is weak."""
    lines = []
    for name, entries in evaluations(model.model_card, bundled_cards()).items():
        parts = []
        for label, result in entries:
            macro = result.get("macro") or {}
            auc, low, high = (_number(macro.get(k)) for k in ("auc", "ci_low", "ci_high"))
            if auc is not None:
                interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
                parts.append(f"{label} {auc:.3f}{interval}")
        if parts:
            lines.append(f"Macro AUC, {name}: " + "; ".join(parts) + " (0.5 = chance).")
    lines.append("Research software, not a medical device: scores are zero-shot similarities, not diagnoses.")
    st.info("\n\n".join(markdown_literal(line) for line in lines))


def card_section(model: LRCLRModel) -> None:
    facts = card_facts(model)
    st.dataframe(facts, hide_index=True, width="stretch", height=35 * (len(facts) + 1) + 3)
    st.caption("Switch models with the sidebar's **Model folder**: the bundled ones are below, or any folder "
               "with config.json, model.safetensors and model_card.json.")
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
    for tab, (name, entries) in zip(st.tabs([markdown_literal(name) for name in found]), found.items()):
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
    figure = roc_figure(entries, finding) if finding else None
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
    phrase = finding.replace("_", " ").lower()
    image = cached("card-image", (case.id,), case.load_image)
    image_sha = case.image_sha256
    case_image = encode_case(model, model_key(model), image_sha, image)
    grid_map = cached("card-map", (model_key(model), image_sha, phrase),
                      lambda: phrase_map(model.explain(case_image, phrase, findings=())))
    heat = grid_to_image(grid_map, case_image.letterbox)
    mask = case.mask(finding)
    peak_y, peak_x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    st.plotly_chart(localization_figure(image, grid_map, model, mask, (peak_x, peak_y), phrase),
                    key="card-localization", config={"displaylogo": False})
    hit = "inside" if mask[peak_y, peak_x] else "outside"
    st.caption(f"Left: the model's map for the phrase '{phrase}' (its peak marked ×). Right: the phantom's "
               f"ground-truth {finding} mask. The peak falls {hit} the mask (one case of the pointing game).")


def localization_figure(image, grid_map, model: LRCLRModel, mask, peak: tuple[int, int], phrase: str) -> go.Figure:
    base = viz.to_display_rgb(image.pixels)
    scale = base.width / image.original_size[0]
    panels = (viz.overlay_heatmap(base, grid_map, image.original_size, model.config.image_size, 0.5),
              viz.mask_overlay(base, mask))
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.02,
                           subplot_titles=(html.escape(f"model map: '{phrase}'"), "ground-truth mask"))
    for column, panel in enumerate(panels, start=1):
        source = "data:image/png;base64," + base64.b64encode(viz.png_bytes(panel, compress_level=1)).decode("ascii")
        figure.add_trace(go.Image(source=source, hoverinfo="skip"), row=1, col=column)
        figure.add_trace(go.Scatter(x=[peak[0] * scale], y=[peak[1] * scale], mode="markers", showlegend=False,
                                    marker={"symbol": "x", "size": 14, "color": "cyan", "line": {"width": 2}},
                                    hovertemplate="peak of the map<extra></extra>"), row=1, col=column)
    figure.update_xaxes(visible=False)
    for column in (1, 2):  # each panel keeps the image's aspect ratio
        figure.update_yaxes(visible=False, scaleanchor="x" if column == 1 else "x2", row=1, col=column)
    figure.update_layout(height=480, margin={"l": 0, "r": 0, "t": 30, "b": 0}, dragmode="pan")
    return figure


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
    st.header("How well it does")
    evaluation_section(model)
    st.header("Localization examples")
    localization_examples(model)
    st.header("Training on your own data (MIMIC-CXR, CheXpert)")
    st.markdown(TRAIN_YOUR_OWN)


st.title("Model")
st.caption("What the model loaded in the sidebar is, what it was trained on and how well it does. "
           "Research software, not a medical device.")
model_page()
