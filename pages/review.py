"""Review: open a radiograph (and its report), see finding scores, regions and word grounding."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from lrclr import viz
from lrclr.errors import ImageReadError
from lrclr.imaging import load_image
from lrclr.reports import decode_report
from pages.shared import current_model

st.title("Review")
st.caption("Research tool for inspecting a model's reasoning. Not a medical device.")

upload = st.file_uploader("Radiograph: PNG, JPEG or DICOM")
report_file = st.file_uploader("Report (.txt), or paste it below", type=["txt"])
report = st.text_area("Report", value=decode_report(report_file.getvalue()) if report_file else "", height=120)

if upload is None:
    st.info("Upload a radiograph to begin.")
    st.stop()

data = upload.getvalue()
show_identifiers = st.checkbox("Show patient identifiers (DICOM)", value=False)
try:
    image = load_image(data, name=upload.name, include_identifiers=show_identifiers)
except ImageReadError as error:
    st.error(str(error))
    st.stop()
for warning in image.warnings:
    st.warning(warning)

model = current_model()
left, right = st.columns([3, 2])
base = viz.to_display_rgb(image.pixels, invert=left.checkbox("Invert", value=False))
if model is None:
    left.image(base, caption=f"{image.original_size[0]}x{image.original_size[1]} px")
    right.warning("No model is loaded (see the sidebar), so only the image is shown.")
else:
    # The image is encoded once per file and model, and the report explained once per text:
    # choosing a word or toggling the overlay only redraws.
    case_key = (hashlib.sha256(data).hexdigest(), model.model_id, str(model.device_info.device))
    if st.session_state.get("case_key") != case_key:
        st.session_state["case"] = model.encode_case(image)
        st.session_state["case_key"] = case_key
        st.session_state.pop("explanation_key", None)
    if st.session_state.get("explanation_key") != (case_key, report):
        st.session_state["explanation"] = model.explain(st.session_state["case"], report)
        st.session_state["explanation_key"] = (case_key, report)
    explanation = st.session_state["explanation"]
    words = [f"{w.index + 1}. {w.text}" for w in explanation.words]
    chosen = right.selectbox("Ground a report word", ["(none)", *words])
    shown = base
    if chosen != "(none)":
        index = words.index(chosen)
        grid_map = explanation.attention_map(index) if explanation.regions else explanation.words[index].patch_similarity
        shown = viz.overlay_heatmap(base, grid_map, image.original_size, model.config.image_size)
    if right.checkbox("Show selected regions", value=True):
        shown = viz.draw_regions(shown, explanation)
    left.image(shown, caption=f"{image.original_size[0]}x{image.original_size[1]} px")
    scores = pd.DataFrame(
        {"finding": [f.finding for f in explanation.findings], "probability": [f.probability for f in explanation.findings]}
    ).sort_values("probability", ascending=False)
    right.dataframe(scores, hide_index=True, use_container_width=True)
    if explanation.report_truncated:
        right.warning("The report is longer than the model reads; words past the limit are not grounded.")

if image.header:
    with st.expander("Image header"):
        st.table(pd.DataFrame({"field": list(image.header), "value": list(image.header.values())}))
if show_identifiers and image.identifiers:
    with st.expander("Patient identifiers (shown because you asked)", expanded=True):
        st.table(pd.DataFrame({"field": list(image.identifiers), "value": list(image.identifiers.values())}))
