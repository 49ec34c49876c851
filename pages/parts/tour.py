"""The demo tour: a short guided path through the gallery for demo sessions, in the sidebar.

One step at a time says what to open, what to click and what to look at, with a button that opens
the step's case (or page). Dismiss hides it for the session; "Show the demo tour" brings it back.
Called from ``app.py`` on every page, after the page itself.
"""

from __future__ import annotations

import streamlit as st

from lrclr.trust.tour import MODEL, REVIEW, TourStep, tour_steps
from pages.parts.case_source import GALLERY
from pages.parts.shared import loaded_model

PAGES = {REVIEW: "pages/review.py", MODEL: "pages/model_card.py"}
STEP, DISMISSED, GO = "tour-step", "tour-dismissed", "tour-go"


def steps() -> tuple[TourStep, ...]:
    """The loaded model's tour (its numbers come from its card; ``lrclr.trust.tour``); without a model
    (it failed to load), the steps say the card holds no figures."""
    model = loaded_model()
    return tour_steps(model.model_card if model is not None else None)


def button_label(step: TourStep) -> str:
    return "Open this case" if step.case_id else "Open the Model page"


def _go(step: TourStep) -> None:
    if step.case_id is not None:  # picked up by the Review page's case picker when it draws
        st.session_state["review-source"] = GALLERY
        st.session_state["review-demo"] = step.case_id
    st.session_state[GO] = PAGES[step.page]


def _move(delta: int, count: int) -> None:
    st.session_state[STEP] = min(max(st.session_state.get(STEP, 0) + delta, 0), count - 1)


def _dismiss(hidden: bool) -> None:
    st.session_state[DISMISSED] = hidden


def follow_tour_link() -> None:
    """Opens the page a step's button asked for (before any page runs)."""
    if target := st.session_state.pop(GO, None):
        st.switch_page(target)


def render_tour(slot) -> None:
    """Draws the tour into ``slot`` (a sidebar container placed above the settings). Called after
    the page has run, so the model has loaded and the steps quote its card; drawn before it, a step
    said "this model's card validates no finding" while the weights were still loading."""
    with slot:
        if st.session_state.get(DISMISSED, False):
            st.button("Show the demo tour", key="tour-show", on_click=_dismiss, args=(False,))
            return
        tour = steps()
        index = min(st.session_state.setdefault(STEP, 0), len(tour) - 1)
        step = tour[index]
        with st.container(border=True, key="tour"):
            st.markdown(f"**Demo tour · {index + 1} of {len(tour)}: {step.title}**")
            st.markdown(step.text)
            st.button(button_label(step), key="tour-open", on_click=_go, args=(step,), type="primary")
            with st.container(horizontal=True):
                st.button("Back", key="tour-back", on_click=_move, args=(-1, len(tour)), disabled=index == 0)
                st.button("Next", key="tour-next", on_click=_move, args=(1, len(tour)),
                          disabled=index == len(tour) - 1)
                st.button("Dismiss", key="tour-dismiss", on_click=_dismiss, args=(True,), type="tertiary",
                          help="Hide the tour; 'Show the demo tour' brings it back")
