"""What every page shares: the cached model and the sidebar. Streamlit-side only; logic is in lrclr/."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from lrclr.errors import LRCLRError
from lrclr.model import LRCLRModel
from lrclr.weights import DEFAULT_MODEL_DIR

MODEL_KEY = "model"


@st.cache_resource(show_spinner="Loading the model…")
def load_model(folder: str, device: str) -> LRCLRModel:
    """Once per process and (folder, device): every session shares the same weights."""
    return LRCLRModel.from_pretrained(folder, device=device)


def render_sidebar() -> None:
    """Model folder, device and annotator; leaves the loaded model (or None) in session state."""
    with st.sidebar:
        st.header("Model")
        default = os.environ.get("LRCLR_MODEL", str(DEFAULT_MODEL_DIR))
        folder = st.text_input("Model folder", value=default, help="config.json + model.safetensors")
        device = st.radio("Device", ["auto", "cpu"], horizontal=True, help="auto: CUDA > MPS > CPU")
        st.session_state[MODEL_KEY] = None
        try:
            model = load_model(str(Path(folder).expanduser()), device)
        except LRCLRError as error:
            st.error(str(error))
        else:
            st.session_state[MODEL_KEY] = model
            st.caption(f"**{model.model_id}** on {model.device_info.name}")
            trained_on = training_data_summary(model.model_card.get("training_data"))
            if trained_on:
                st.caption(f"Trained on: {trained_on}")
        st.header("Annotator")
        st.text_input("Your name or ID", key="annotator", help="Recorded with the verdicts you give")


def training_data_summary(training_data) -> str:
    """One line for the sidebar; the Model page (issue #7) shows the card in full."""
    if isinstance(training_data, dict) and isinstance(training_data.get("spec"), dict):
        kind = training_data["spec"].get("kind", "?")
        reports = training_data["spec"].get("reports")
        train = training_data.get("split_sizes", {}).get("train")
        details = ", ".join(x for x in (f"{reports} reports" if reports else "", f"{train} training images" if train else "") if x)
        return f"{kind} dataset" + (f" ({details})" if details else "")
    return str(training_data or "")


def current_model() -> LRCLRModel | None:
    return st.session_state.get(MODEL_KEY)
