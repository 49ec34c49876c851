"""What every page shares: the cached model, flag store and encodings, and the sidebar.

Streamlit-side only; logic is in lrclr/.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor, wait

import streamlit as st
import torch

from lrclr.annotations.store import AnnotationStore
from lrclr.deployment.settings import DeploymentSettings, load_settings
from lrclr.trust.card_tables import training_data_summary
from lrclr.errors import LRCLRError
from lrclr.escaping import markdown_literal
from lrclr.imaging.reading import LoadedImage
from lrclr.deployment.logins import Credentials, User
from lrclr.model.lrclr_model import CaseImage, LRCLRModel

MODEL_KEY = "model"
STORE_KEY = "flag-store"


# Every process-wide cache is bounded: models and stores come from the deployment's fixed lists, and
# a few entries cover them (each model is hundreds of MB, so more would be a leak, not a cache).
@st.cache_resource(max_entries=4, show_spinner=False)
def start_loading_model(folder: str, device: str) -> Future:
    """Load once per process and (folder, device), in the background; every session shares it.

    Pages draw the case picker and the radiograph while the weights load, so the browser's first
    render overlaps the load instead of following it (the app's cold start, BENCHMARKS.md).
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lrclr-model-load")
    loading = executor.submit(_load_model, folder, device)
    executor.shutdown(wait=False)
    return loading


def app_thread_count() -> int:
    """Torch threads for the app: ``OMP_NUM_THREADS`` if set, else every core but one.

    The spare core is for the web server and a browser on the same machine: with torch's threads
    on both cores of a 2-core machine, encoding a new case took ~0.45 s instead of ~0.15 s while
    the browser was redrawing, because torch's threads wait on each other when one is descheduled.
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, len(os.sched_getaffinity(0)) - 1)


def _load_model(folder: str, device: str) -> LRCLRModel:
    torch.set_num_threads(app_thread_count())
    return LRCLRModel.from_pretrained(folder, device=device)


@st.cache_resource(max_entries=2, show_spinner=False)
def open_store(folder: str, url: str | None = None) -> AnnotationStore:
    """One store (one connection, locked per call) per process: the PostgreSQL database at ``url``
    that the deployment's replicas share, else the SQLite file in ``folder``."""
    return AnnotationStore(url) if url else AnnotationStore.open(folder)


@st.cache_resource(max_entries=64, show_spinner=False)
def encode_case(_model: LRCLRModel, model_key: str, image_sha256: str, _image: LoadedImage) -> CaseImage:
    """Image encodings shared by every session (keyed by model and image hash, never by file name)."""
    return _model.encode_case(_image)


def model_key(model: LRCLRModel) -> str:
    return f"{model.model_id}@{id(model)}"


def cached(name: str, key: tuple, compute, keep: int = 1, size=None):
    """Keep up to ``keep`` values per name in the session (most recent first); compute on a miss.

    Going back to a case the user just looked at then costs nothing. With ``size`` (value -> bytes),
    the values also stay within the deployment's per-session cache budget (the newest is always kept).
    """
    entries: dict = st.session_state.setdefault(f"{name}-cache", {})
    if key in entries:
        entries[key] = entries.pop(key)  # most recently used last
    else:
        entries[key] = compute()
        budget = current_settings().budgets.session_cache_bytes
        while len(entries) > keep or (size is not None and len(entries) > 1
                                      and sum(size(v) for v in entries.values()) > budget):
            entries.pop(next(iter(entries)))
    return entries[key]


def image_bytes(image: LoadedImage) -> int:
    modality = image.modality.values.nbytes if image.modality is not None else 0  # a DICOM's own units
    return image.pixels.nbytes + modality


SETTINGS_KEY, USER_KEY, EDITING_NAME_KEY = "deployment-settings", "signed-in-user", "annotator-editing"


def deployment() -> DeploymentSettings:
    """The deployment settings, read on every run (a few lines): nothing a browser sends changes
    them. A broken settings file stops every page with the reason, never falls back to defaults."""
    try:
        settings = load_settings()
    except LRCLRError as error:
        st.error(markdown_literal(str(error)))
        st.stop()
    st.session_state[SETTINGS_KEY] = settings
    return settings


def current_settings() -> DeploymentSettings:
    return st.session_state.get(SETTINGS_KEY) or load_settings()


def require_login(settings: DeploymentSettings) -> User | None:
    """The signed-in user; without one, a sign-in form and nothing else (every page runs this first).
    None when the deployment has no logins."""
    if not settings.login_required:
        return None
    user = st.session_state.get(USER_KEY)
    if user is not None:
        return user
    st.title("LRCLR Review")
    with st.form("sign-in"):
        name = st.text_input("User name", max_chars=64)
        password = st.text_input("Password", type="password", max_chars=1024)
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            user = Credentials.load(settings.credentials).authenticate(name, password)
        except LRCLRError as error:
            st.error(markdown_literal(str(error)))
            st.stop()
        if user is not None:
            st.session_state[USER_KEY] = user
            st.rerun()
        st.error("Wrong user name or password.")
    st.caption("This deployment requires a sign-in. Ask its administrator for an account.")
    st.stop()


def may_see_the_menu() -> bool:
    """Whether this session may see the page menu: always without logins, else once signed in.
    (Any page still draws the sign-in itself, this only keeps the menu off the sign-in screen.)"""
    try:
        return not load_settings().login_required or st.session_state.get(USER_KEY) is not None
    except LRCLRError:
        return False  # the page's frame shows why the settings cannot be read


def sign_out() -> None:
    st.session_state.pop(USER_KEY, None)
    st.session_state.pop("annotator", None)


def render_sidebar(settings: DeploymentSettings, user: User | None):
    """Model, device, annotator and flag store, as the deployment allows. Starts loading the model
    (see ``current_model``) and returns the sidebar slot that ``show_model_status`` fills."""
    with st.sidebar:
        if user is not None:
            st.caption(markdown_literal(f"Signed in as {user.name} ({user.role})"))
            st.button("Sign out", on_click=sign_out)
        st.header("Model")
        labels = [choice.label for choice in settings.models]
        # With logins, only an admin chooses; everyone else works with the deployment's first model.
        may_choose = user is None or user.is_admin
        if not may_choose:
            st.session_state.pop("model-choice", None)
        label = st.selectbox("Model", labels, key="model-choice", disabled=not may_choose,
                             help="The models this deployment offers" + ("" if may_choose else " (an admin chooses)"))
        device = st.radio("Device", ["auto", "cpu"], horizontal=True, help="auto: CUDA > MPS > CPU")
        source = (str(settings.model_folder(label or labels[0])), device)
        st.session_state[MODEL_KEY] = (source, start_loading_model(*source))
        model_status = st.empty()
        st.header("Annotator")
        if user is not None:
            st.session_state["annotator"] = user.name  # verdicts are recorded under the signed-in name
            st.caption(markdown_literal(f"Verdicts are recorded as {user.name}."))
        else:
            # Re-assigned each run so the name survives pages that do not draw this widget.
            st.session_state["annotator"] = st.session_state.get("annotator", "")
            name = st.session_state["annotator"].strip()
            if name and not st.session_state.get(EDITING_NAME_KEY):
                # Once given, the name is shown, not an input: the box leaves the page, and with it the
                # keyboard focus, so the verdict keys (B, G, U) record verdicts instead of typing into
                # the name ("dr_carolgg", issue #19).
                st.caption(markdown_literal(f"Verdicts are recorded as {name}."))
                st.button("Change name", on_click=lambda: st.session_state.update({EDITING_NAME_KEY: True}))
            else:
                st.text_input("Your name or ID", key="annotator", help="Recorded with the verdicts you give",
                              max_chars=200, on_change=lambda: st.session_state.update({EDITING_NAME_KEY: False}))
        st.session_state[STORE_KEY] = None
        try:
            st.session_state[STORE_KEY] = open_store(str(settings.flag_store), settings.flag_store_url)
        except (LRCLRError, OSError) as error:
            st.error(markdown_literal(f"The flag store cannot be opened: {error}"))
    return model_status


def show_model_status(slot) -> None:
    """After the page: the model in use, or why it did not load (then the next run tries again).

    Run last so that a GPU fallback during this page's work is reported in the same run.
    """
    with slot.container():
        model = current_model()
        if model is None:
            source, loading = st.session_state[MODEL_KEY]
            error = loading.exception()
            st.error(markdown_literal(str(error) if isinstance(error, LRCLRError)
                                      else f"The model could not be loaded: {error!r}"))
            start_loading_model.clear(*source)
            return
        st.caption(f"**{markdown_literal(model.model_id)}** on {markdown_literal(model.device_info.name)}")
        if model.fallback_notice:
            st.warning(markdown_literal(model.fallback_notice))
        trained_on = training_data_summary(model.model_card.get("training_data"),
                                           model.model_card.get("extra_training_data"))
        if trained_on:
            st.caption(markdown_literal(f"Trained on: {trained_on}"))


def model_is_loading() -> bool:
    entry = st.session_state.get(MODEL_KEY)
    return entry is not None and not entry[1].done()


def current_model() -> LRCLRModel | None:
    """The shared model, waiting (with a spinner) while it loads; None if it could not be loaded."""
    entry = st.session_state.get(MODEL_KEY)
    if entry is None:
        return None
    _, loading = entry
    if not loading.done():
        with st.spinner("Loading the model (once per server start)…"):
            wait([loading])
    return None if loading.exception() is not None else loading.result()


def loaded_model() -> LRCLRModel | None:
    """The shared model if it has finished loading, else None, without waiting (for the sidebar)."""
    entry = st.session_state.get(MODEL_KEY)
    if entry is None or not entry[1].done() or entry[1].exception() is not None:
        return None
    return entry[1].result()


def current_store() -> AnnotationStore | None:
    return st.session_state.get(STORE_KEY)


def current_annotator() -> str:
    user = st.session_state.get(USER_KEY)
    return user.name if user is not None else str(st.session_state.get("annotator", "")).strip()


def current_user() -> User | None:
    return st.session_state.get(USER_KEY)
