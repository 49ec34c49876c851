"""The demo gallery as thumbnails (finding and source under each), and next/previous case with keys.

The chosen case's id lives in ``st.session_state["<page>-demo"]``, a key of the page's own (no
widget's), which the tour and the Quality page also set to open a case.
"""

from __future__ import annotations

import io

import streamlit as st

from lrclr.demo import DemoCase

COLUMNS = 7
THUMBNAIL_SIDE = 160
NEXT_KEY, PREVIOUS_KEY = "N", "P"


@st.cache_resource(max_entries=1, show_spinner=False)
def thumbnails(ids: tuple[str, ...], _cases: tuple[DemoCase, ...]) -> dict[str, bytes]:
    """JPEG thumbnails of every demo case, once per process (the browser caches them by content)."""
    encoded = {}
    for case in _cases:
        buffer = io.BytesIO()
        case.thumbnail(THUMBNAIL_SIDE).save(buffer, format="JPEG", quality=85)
        encoded[case.id] = buffer.getvalue()
    return encoded


def chosen_id(key: str, cases: tuple[DemoCase, ...]) -> str:
    """The open case: the one last chosen, or the first (an id no longer in the gallery is dropped)."""
    ids = [case.id for case in cases]
    current = st.session_state.get(f"{key}-demo")
    if current not in ids:
        current = ids[0]
        st.session_state[f"{key}-demo"] = current
    return current


def _choose(key: str, case_id: str) -> None:
    st.session_state[f"{key}-demo"] = case_id


def _step(key: str, ids: list[str], delta: int) -> None:
    current = st.session_state.get(f"{key}-demo")
    index = ids.index(current) if current in ids else 0
    st.session_state[f"{key}-demo"] = ids[(index + delta) % len(ids)]


def navigation(key: str, cases: tuple[DemoCase, ...], enabled: bool = True) -> None:
    """Previous / next demo case buttons with their keys (P, N): drawn beside the image, so the
    next case is one key away however far down the gallery is."""
    ids = [case.id for case in cases]
    left, right = st.columns(2)
    left.button("◀ Prev", key=f"{key}-previous", shortcut=PREVIOUS_KEY, width="stretch",
                on_click=_step, args=(key, ids, -1), disabled=not enabled)
    right.button("Next ▶", key=f"{key}-next", shortcut=NEXT_KEY, width="stretch",
                 on_click=_step, args=(key, ids, 1), disabled=not enabled)


def gallery(key: str, cases: tuple[DemoCase, ...]) -> DemoCase:
    """The thumbnails, each with its finding as the button that opens it and its source under it;
    returns the open case."""
    current = chosen_id(key, cases)
    pictures = thumbnails(tuple(case.id for case in cases), cases)
    for start in range(0, len(cases), COLUMNS):
        for column, case in zip(st.columns(COLUMNS), cases[start:start + COLUMNS]):
            with column.container(key=f"{key}-thumb-{case.id}"):
                st.image(pictures[case.id], width="stretch")
                # A button's label is Markdown: the captions are the manifest's, not user text.
                st.button(case.findings_text, key=f"{key}-pick-{case.id}", width="stretch", on_click=_choose,
                          args=(key, case.id), type="primary" if case.id == current else "secondary",
                          help=case.title)
                st.caption(case.source_text + (" · open" if case.id == current else ""))
    return next(case for case in cases if case.id == current)
