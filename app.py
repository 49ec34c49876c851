"""LRCLR Review: ``streamlit run app.py``. The navigation; each page draws the shared frame itself
(``pages/parts/frame.py``: settings, sign-in, sidebar, tour), so a page reached any way has it."""

import streamlit as st

from pages.parts.shared import may_see_the_menu

navigation = st.navigation([
    st.Page("pages/review.py", title="Review", default=True),
    st.Page("pages/annotate.py", title="Annotate"),
    st.Page("pages/quality.py", title="Quality"),
    st.Page("pages/batch.py", title="Batch"),
    st.Page("pages/model_card.py", title="Model"),
], position="sidebar" if may_see_the_menu() else "hidden")
navigation.run()
