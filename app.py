"""LRCLR Review: ``streamlit run app.py``. The navigation (``pages/parts/navigation.py``); each page
draws the shared frame itself (``pages/parts/frame.py``: settings, sign-in, sidebar, tour), so a
page reached any way has it."""

from pages.parts.navigation import run_app

run_app()
