"""The app's page logic with Streamlit's AppTest (the real browser checks come with the Review issue)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.support.app_pages import as_shown
from tests.support.paths import REPO_ROOT


def _app(monkeypatch, model_dir=None) -> AppTest:
    if model_dir is not None:
        monkeypatch.setenv("LRCLR_MODEL", str(model_dir))
    else:
        monkeypatch.delenv("LRCLR_MODEL", raising=False)
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.run()
    return app


def test_app_opens_on_the_bundled_model(monkeypatch):
    app = _app(monkeypatch)
    assert not app.exception
    captions = [as_shown(c.value) for c in app.sidebar.caption]
    assert captions[0].startswith("**lrclr-default** on CPU")
    assert "421 training images" in captions[1]  # the whole NIH sample (measured by cross-validation)
    assert "+ 340 phantom images (training only)" in captions[1]  # the card's extra_training_data
    # It opens on the first demo case, so a fresh install shows something without any data.
    assert app.session_state["review-demo"] == "nih-01-cardiomegaly"
    assert len(app.dataframe[0].value) == 14


def test_a_missing_model_folder_is_explained_not_a_traceback(monkeypatch, tmp_path):
    app = _app(monkeypatch, tmp_path / "no-model-here")
    assert not app.exception
    assert "does not exist" in app.sidebar.error[0].value


def test_a_model_folder_fixed_after_a_failed_load_is_loaded_on_the_next_run(monkeypatch, tmp_path):
    """A failed load is not cached: once the user puts the model in place, the next run loads it."""
    import shutil

    from lrclr.bundled import DEFAULT_MODEL_DIR

    folder = tmp_path / "model"
    app = _app(monkeypatch, folder)
    assert "does not exist" in app.sidebar.error[0].value
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    app.run()
    assert not app.exception and not app.sidebar.error
    assert as_shown(app.sidebar.caption[0].value).startswith("**lrclr-default** on CPU")
    assert len(app.dataframe[0].value) == 14
