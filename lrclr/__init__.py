"""LRCLR: Local Region Contrastive Learning for chest X-ray image-report models.

The library shared by the Streamlit app (``app.py``, ``pages/``) and the training package
(``train/``). It never imports Streamlit.
"""

__version__ = "0.1.0"
