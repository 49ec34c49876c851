"""The panels under the viewer: a phantom's ground-truth mask beside the model's map, and the DICOM
header with its patient identifiers hidden unless the reader asks, for that case only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lrclr.display import figures as viz
from lrclr.display.orientation import Orientation
from lrclr.imaging.reading import LoadedImage
from pages.parts.case_source import CaseInput


def mask_comparison(case: CaseInput, image: LoadedImage, model_view, orientation: Orientation) -> None:
    """A phantom's ground-truth mask beside the model's map, flipped/rotated as the viewer is."""
    if case.demo is None or not case.demo.mask_findings:
        return
    finding = st.selectbox("Ground-truth mask (phantom)", ["(none)", *case.demo.mask_findings])
    if finding == "(none)":
        return
    base = viz.to_display_rgb(image.pixels)
    left, right = st.columns(2)
    left.image(model_view, caption="Model's map", width="stretch")
    right.image(orientation.image(viz.mask_overlay(base, case.demo.mask(finding))), caption=f"Ground truth: {finding}",
                width="stretch")


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
