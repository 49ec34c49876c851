"""The demo tour: a short guided path through the gallery for demo sessions, in the sidebar.

One step at a time says what to open, what to click and what to look at, with a button that opens
the step's case (or page). Dismiss hides it for the session; "Show the demo tour" brings it back.
Called from ``app.py`` on every page, after the navigation is set up.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_pages.case_source import GALLERY

REVIEW, MODEL = "app_pages/review.py", "app_pages/model_card.py"
STEP, DISMISSED, GO = "tour-step", "tour-dismissed", "tour-go"


@dataclass(frozen=True)
class TourStep:
    title: str
    text: str  # the project's own Markdown, never user text
    page: str
    case_id: str | None = None  # a demo gallery case the step opens

    @property
    def button(self) -> str:
        return "Open this case" if self.case_id else "Open the Model page"


STEPS = (
    TourStep("Scores beside the report",
             "Open the **Cardiomegaly (NIH)** case. In the **Findings** tab, compare each zero-shot probability "
             "with what the report says; rows where the model and the report disagree are shaded red.",
             REVIEW, "nih-01-cardiomegaly"),
    TourStep("Where a report word looks",
             "Open the **Report words** tab and click *Heart*, then *enlarged*: the heat map shows where each word "
             "attends. "
             "The numbered yellow boxes are the regions the model selected, 1 = most significant. In **Regions**, "
             "click a rank to list the words it answers to.",
             REVIEW, "nih-01-cardiomegaly"),
    TourStep("Model map against ground truth",
             "This phantom has exact masks. Type *cardiomegaly* in the **Phrase** tab, then pick "
             "**Ground-truth mask (phantom)** under the viewer: the model's map and the true heart outline "
             "appear side by side.",
             REVIEW, "phantom-01-cardiomegaly-edema"),
    TourStep("Ground any phrase",
             "Both costophrenic angles are blunted on this film. Type *left pleural effusion* in **Phrase**, then "
             "*right pleural effusion*: do the maps move to the matching base?",
             REVIEW, "nih-02-effusion"),
    TourStep("A real DICOM",
             "A JPEG-compressed DICOM with sternotomy wires. Use **Display** to window it; the **DICOM header** "
             "panel below the viewer hides patient identifiers unless you ask for them.",
             REVIEW, "dicom-01-jpeg"),
    TourStep("How good is the model?",
             "The **Model** page shows what the loaded model was trained on, its per-finding AUC with 95% "
             "intervals against the global-only baseline, and ROC curves. The bundled models score low and "
             "their intervals are wide: they demonstrate the tool, they are not a classifier.",
             MODEL),
)


def _go(step: TourStep) -> None:
    if step.case_id is not None:  # picked up by the Review page's case picker when it draws
        st.session_state["review-source"] = GALLERY
        st.session_state["review-demo"] = step.case_id
    st.session_state[GO] = step.page


def _move(delta: int) -> None:
    st.session_state[STEP] = min(max(st.session_state.get(STEP, 0) + delta, 0), len(STEPS) - 1)


def _dismiss(hidden: bool) -> None:
    st.session_state[DISMISSED] = hidden


def render_tour(slot) -> None:
    """Draws the tour into ``slot`` (a sidebar container); opens the page a step's button asked for."""
    if target := st.session_state.pop(GO, None):
        st.switch_page(target)
    with slot:
        if st.session_state.get(DISMISSED, False):
            st.button("Show the demo tour", key="tour-show", on_click=_dismiss, args=(False,))
            return
        index = st.session_state.setdefault(STEP, 0)
        step = STEPS[index]
        with st.container(border=True, key="tour"):
            st.markdown(f"**Demo tour · {index + 1} of {len(STEPS)}: {step.title}**")
            st.markdown(step.text)
            st.button(step.button, key="tour-open", on_click=_go, args=(step,), type="primary")
            with st.container(horizontal=True):
                st.button("Back", key="tour-back", on_click=_move, args=(-1,), disabled=index == 0)
                st.button("Next", key="tour-next", on_click=_move, args=(1,), disabled=index == len(STEPS) - 1)
                st.button("Dismiss", key="tour-dismiss", on_click=_dismiss, args=(True,), type="tertiary",
                          help="Hide the tour; 'Show the demo tour' brings it back")
