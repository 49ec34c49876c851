"""LRCLR Review: ``streamlit run app.py``. Navigation and the shared sidebar; pages do the rest."""

import streamlit as st

from app_pages.shared import render_sidebar

st.set_page_config(page_title="LRCLR Review", layout="wide")
render_sidebar()
navigation = st.navigation([
    st.Page("app_pages/review.py", title="Review", default=True),
    st.Page("app_pages/annotate.py", title="Annotate"),
    st.Page("app_pages/quality.py", title="Quality"),
])
navigation.run()
