"""Quality: what annotators flagged, how much they agree, which cases the model gets most wrong.

Layout only: counts and exports come from ``lrclr.annotations.store``, agreement from ``lrclr.annotations.agreement``.
"""

from __future__ import annotations

import io
import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lrclr.annotations.agreement import pairwise_agreement
from lrclr.annotations.records import VERDICTS
from lrclr.annotations.store import AnnotationStore
from lrclr.escaping import plotly_label
from pages.parts.case_source import GALLERY, gallery
from pages.parts.shared import current_store
from pages.parts import frame

VERDICT_COLOURS = {"bad match": "#d62728", "good match": "#2ca02c", "unsure": "#7f7f7f"}


def counts_figure(counts: dict[str, dict[str, int]], title: str, horizontal: bool = True) -> go.Figure:
    """Stacked bars of verdicts per group (day, word or annotator)."""
    groups = list(counts)[::-1] if horizontal else list(counts)
    labels = [plotly_label(g) for g in groups]  # annotator names and report words are user text
    figure = go.Figure()
    for verdict in VERDICTS:
        values = [counts[g][verdict] for g in groups]
        figure.add_trace(go.Bar(x=values if horizontal else labels, y=labels if horizontal else values, name=verdict,
                                orientation="h" if horizontal else "v", marker_color=VERDICT_COLOURS[verdict]))
    figure.update_layout(barmode="stack", title=title, height=max(260, 24 * len(groups) + 120),
                         margin={"l": 0, "r": 0, "t": 40, "b": 0}, legend={"orientation": "h"})
    # Groups are labels (words, names, days), never a numeric axis.
    (figure.update_yaxes if horizontal else figure.update_xaxes)(type="category")
    return figure


def open_in_review(case_id: str) -> None:
    """Button callback: the Review page picks these up when it draws its case picker."""
    st.session_state["review-source"] = GALLERY
    st.session_state["review-demo"] = case_id
    st.session_state["open-review"] = True


def agreement_section(store: AnnotationStore) -> None:
    st.subheader("Agreement between annotators")
    report = pairwise_agreement(store.verdicts())
    if report.items == 0:
        st.info("No region-word pair has been judged by two or more annotators yet.")
        return
    st.caption(f"{report.items} pair(s) judged by two or more of {len(report.annotators)} annotators; "
               f"raw agreement {report.percent_agreement:.1f}%.")
    if report.fleiss_items:
        value = "undefined (every verdict the same)" if math.isnan(report.fleiss_kappa) else f"{report.fleiss_kappa:.3f}"
        st.caption(f"Fleiss' kappa over the {report.fleiss_items} pair(s) judged by {report.fleiss_raters} "
                   f"annotators: {value}")
    st.dataframe(pd.DataFrame({
        "annotator A": [p.annotator_a for p in report.pairs], "annotator B": [p.annotator_b for p in report.pairs],
        "pairs in common": [p.items for p in report.pairs],
        "agreement %": [round(p.percent_agreement, 1) for p in report.pairs],
        "Cohen's kappa": [None if math.isnan(p.kappa) else round(p.kappa, 3) for p in report.pairs],
    }), hide_index=True, width="stretch")


def worst_cases_section(store: AnnotationStore) -> None:
    st.subheader("Cases with the most bad matches")
    demo_ids = {case.id for case in gallery()}
    for case_id, counts in list(store.counts_by_case().items())[:10]:
        if not counts["bad match"]:
            break
        left, right = st.columns([3, 1])
        left.text(f"{case_id}: {counts['bad match']} bad, {counts['good match']} good, {counts['unsure']} unsure")
        if case_id in demo_ids:
            right.button("Open in Review", key=f"open-{case_id}", on_click=open_in_review, args=(case_id,))
        else:
            right.caption("uploaded case: upload it again in Review")


def export_section(store: AnnotationStore) -> None:
    st.subheader("Export")

    def text_of(write) -> str:
        buffer = io.StringIO()
        write(buffer)
        return buffer.getvalue()

    left, middle, right = st.columns(3)
    left.download_button("Verdicts and history (JSON)", data=lambda: text_of(store.export_json),
                         file_name="lrclr-verdicts.json", mime="application/json", on_click="ignore")
    middle.download_button("Verdicts (CSV)", data=lambda: text_of(lambda b: store.export_csv(b, "verdicts")),
                           file_name="lrclr-verdicts.csv", mime="text/csv", on_click="ignore")
    right.download_button("History (CSV)", data=lambda: text_of(lambda b: store.export_csv(b, "history")),
                          file_name="lrclr-history.csv", mime="text/csv", on_click="ignore")


def quality(store: AnnotationStore) -> None:
    verdicts = store.verdicts()
    totals = {v: sum(1 for x in verdicts if x.verdict == v) for v in VERDICTS}
    columns = st.columns(4)
    columns[0].metric("Verdicts", len(verdicts))
    for column, verdict in zip(columns[1:], VERDICTS):
        column.metric(verdict.capitalize(), totals[verdict])
    if not verdicts:
        st.info("No verdicts yet. Judge region-word pairs on the Annotate page.")
        return
    over_time, by_word, by_annotator = st.tabs(["Over time", "By word", "By annotator"])
    over_time.plotly_chart(counts_figure(store.counts("day"), "Verdicts per day (UTC)", horizontal=False),
                           key="by-day")
    by_word.plotly_chart(counts_figure(dict(list(store.counts("word").items())[:25]),
                                       "Words with the most bad matches (top 25)"), key="by-word")
    by_annotator.plotly_chart(counts_figure(store.counts("annotator"), "Verdicts per annotator"), key="by-annotator")
    latest = verdicts[-20:][::-1]
    st.subheader("Latest verdicts")
    st.dataframe(pd.DataFrame({
        "annotator": [v.annotator for v in latest], "case": [v.pair.case_id for v in latest],
        "word": [v.pair.word for v in latest], "region": [v.pair.region_rank for v in latest],
        "verdict": [v.verdict for v in latest], "comment": [v.comment for v in latest],
        "updated (UTC)": [v.updated_at for v in latest]}), hide_index=True, width="stretch")
    agreement_section(store)
    worst_cases_section(store)
    export_section(store)


page_frame = frame.begin()  # settings, sign-in, sidebar: before anything of this page
if st.session_state.pop("open-review", False):
    st.switch_page("pages/review.py")
st.title("Quality")
st.caption("Annotators' verdicts on the model's region-word matches. Comments are shown as plain text.")
flag_store = current_store()
if flag_store is None:
    st.warning("No flag store is open (see the sidebar).")
else:
    quality(flag_store)
frame.end(page_frame)
