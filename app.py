"""LRCLR Review: ``streamlit run app.py``. Navigation, the shared sidebar and the demo tour; pages do the rest."""

import streamlit as st

from pages.parts.shared import deployment, render_sidebar, require_login, show_model_status
from pages.parts.tour import follow_tour_link, render_tour

st.set_page_config(page_title="LRCLR Review", layout="wide")
settings = deployment()
user = require_login(settings)  # with logins on, nothing below runs until the user signs in
tour_slot = st.sidebar.container()  # the tour sits above the model and annotator settings
model_status = render_sidebar(settings, user)
navigation = st.navigation([
    st.Page("pages/review.py", title="Review", default=True),
    st.Page("pages/annotate.py", title="Annotate"),
    st.Page("pages/quality.py", title="Quality"),
    st.Page("pages/batch.py", title="Batch"),
    st.Page("pages/model_card.py", title="Model"),
])
follow_tour_link()
navigation.run()
render_tour(tour_slot)  # after the page, which waited for the model: the steps quote its card
show_model_status(model_status)
