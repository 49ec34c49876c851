"""The frame every page draws around itself: settings, sign-in, sidebar, demo tour, model status.

Each page calls ``begin()`` before anything else and ``end(frame)`` last. The frame cannot live in
``app.py`` alone: Streamlit also serves ``pages/*.py`` by themselves, and on a fresh server the first
visit to a page's URL (``/annotate``) runs that file without ``app.py`` until some session has
called ``st.navigation`` (checked with Streamlit 1.67). Drawn by the page, the frame, and with it the
sign-in and the app's menu (``pages/parts/navigation.py``), is there whichever way the page was
reached (``tests/app/test_browser_pages.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from pages.parts.navigation import run_through_the_menu
from pages.parts.shared import deployment, render_sidebar, require_login, show_model_status
from pages.parts.tour import follow_tour_link, render_tour


@dataclass
class Frame:
    tour_slot: object  # the sidebar container above the settings, filled by ``end``
    model_status: object  # the sidebar slot ``show_model_status`` fills


def begin() -> Frame:
    run_through_the_menu()  # before anything is drawn: see pages/parts/navigation.py
    st.set_page_config(page_title="LRCLR Review", layout="wide")
    settings = deployment()
    user = require_login(settings)  # with logins on, nothing below runs until the user signs in
    tour_slot = st.sidebar.container()  # the tour sits above the model and annotator settings
    model_status = render_sidebar(settings, user)
    follow_tour_link()  # a tour button asked for another page: go there before this one draws
    return Frame(tour_slot, model_status)


def end(frame: Frame) -> None:
    render_tour(frame.tour_slot)  # after the page, which waited for the model: the steps quote its card
    show_model_status(frame.model_status)
