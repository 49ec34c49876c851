"""The app's page menu, in one place: ``app.py`` runs it; a page Streamlit ran by itself goes through it.

Streamlit serves ``pages/*.py`` by themselves as well (its older pages-folder mode, on because the
folder is named ``pages``): until some session has called ``st.navigation``, a fresh server's visit
to ``/annotate`` runs ``pages/annotate.py`` without ``app.py``, and the server stays in that mode,
with a menu of file names ("app", "annotate", ... "model card") shown even on the sign-in screen,
until someone opens the root URL. A page run that way registers this menu, which ends that mode
for the server, and switches to itself through it at once, before drawing anything: a page that
registered the menu and drew on lost the first thing its user sent (the sign-in form came back
empty), checked with Streamlit 1.67.
"""

from __future__ import annotations

import threading

import streamlit as st

from pages.parts.shared import may_see_the_menu

# Set while app.py runs the chosen page: a page that finds it unset was run by Streamlit directly.
_this_thread = threading.local()
_SEEN_KEY = "navigation-session-seen"  # in session state from the session's first run on


def _menu():
    return st.navigation([
        st.Page("pages/review.py", title="Review", default=True),
        st.Page("pages/annotate.py", title="Annotate"),
        st.Page("pages/quality.py", title="Quality"),
        st.Page("pages/batch.py", title="Batch"),
        st.Page("pages/model_card.py", title="Model"),
    ], position="sidebar" if may_see_the_menu() else "hidden")


def run_app() -> None:
    """app.py: show the menu and run the page the URL names."""
    _this_thread.through_app = True
    try:
        _menu().run()
    finally:
        _this_thread.through_app = False


def run_through_the_menu() -> None:
    """Every page, first: when Streamlit ran this file by itself on the session's first run, run it
    again as the menu's page (the same URL and query parameters). Returns when the page may draw.

    Only a first run is redirected: it carries no widget events to lose. On a server, only a first
    run can be a direct one, since the first ``st.navigation`` call ends the pages-folder mode for
    every session; Streamlit's ``AppTest`` starts every run after the first in that mode again,
    with the clicks of the run in it, and there the page draws as it is.
    """
    first_run = _SEEN_KEY not in st.session_state
    st.session_state[_SEEN_KEY] = True
    if first_run and not getattr(_this_thread, "through_app", False):
        st.switch_page(_menu(), query_params=st.query_params.to_dict())
