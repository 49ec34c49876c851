"""The Annotate and Quality pages with Streamlit's AppTest, on the bundled model and demo cases."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lrclr.annotations.records import PairKey

from lrclr.annotations.store import AnnotationStore
from lrclr.demo import load_gallery
from tests.support.app_pages import as_shown, deployment_settings
from tests.support.paths import REPO_ROOT
from tests.support.servers import free_port

HOSTILE_COMMENT = '"; DROP TABLE verdicts; -- <script>alert(1)</script> **x** 🫁'


@pytest.fixture
def data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    monkeypatch.setenv("LRCLR_DATA_DIR", str(tmp_path / "flags"))
    return tmp_path / "flags"


def _page(page: str, annotator: str = "") -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    if annotator:
        app.sidebar.text_input(key="annotator").set_value(annotator).run()
    app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def _button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def _progress_text(app: AppTest) -> str:
    return app.get("progress")[0].proto.text


def test_annotate_asks_who_is_judging_first(data_dir):
    app = _page("pages/annotate.py")
    assert "Enter your name or ID" in app.warning[0].value
    assert not [b for b in app.button if b.label == "Bad match"]


def test_a_verdict_with_a_comment_is_stored_shown_verbatim_and_undone(data_dir):
    app = _page("pages/annotate.py", annotator="dr-a")
    assert _progress_text(app) == "This case: 0 of 30 pairs judged"
    app.text_input(key=next(t.key for t in app.text_input if t.label == "Comment (optional)")).set_value(
        HOSTILE_COMMENT)
    _button(app, "Bad match").click().run()
    assert not app.exception
    assert _progress_text(app) == "This case: 1 of 30 pairs judged"
    with AnnotationStore.open(data_dir) as store:
        [verdict] = store.verdicts()
    assert (verdict.annotator, verdict.verdict, verdict.comment) == ("dr-a", "bad match", HOSTILE_COMMENT)
    assert verdict.pair.case_id == load_gallery()[0].id
    assert app.dataframe[0].value["comment"].tolist() == [HOSTILE_COMMENT]
    # The comment box is empty again for the next pair.
    assert next(t for t in app.text_input if t.label == "Comment (optional)").value == ""
    _button(app, "Undo last").click().run()
    assert _progress_text(app) == "This case: 0 of 30 pairs judged"
    with AnnotationStore.open(data_dir) as store:
        assert store.verdicts() == [] and [h.action for h in store.history()] == ["create", "undo"]


def test_with_a_postgresql_url_in_the_settings_verdicts_go_to_that_database(monkeypatch, tmp_path, postgres_server):
    url = postgres_server.new_database()
    deployment_settings(monkeypatch, tmp_path, f'[flag_store]\nurl = "{url}"\n')
    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    monkeypatch.setenv("LRCLR_DATA_DIR", str(tmp_path / "local"))
    app = _page("pages/annotate.py", annotator="dr-a")
    _button(app, "Bad match").click().run()
    assert not app.exception and _progress_text(app) == "This case: 1 of 30 pairs judged"
    with AnnotationStore(url) as store:
        [verdict] = store.verdicts()
    assert (verdict.annotator, verdict.verdict) == ("dr-a", "bad match")
    assert not (tmp_path / "local").exists()  # nothing written to a file on this replica


def test_an_unreachable_flag_store_is_named_on_screen_without_its_password(monkeypatch, tmp_path):
    secret = "hunter2-not-for-screens"
    url = f"postgresql://reader:{secret}@127.0.0.1:{free_port()}/flags"
    deployment_settings(monkeypatch, tmp_path, f'[flag_store]\nurl = "{url}"\n')
    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    app = _page("pages/annotate.py", annotator="dr-a")
    shown = [as_shown(e.value) for e in app.sidebar.error]
    assert any("Cannot reach the flag store (PostgreSQL database flags on 127.0.0.1" in e for e in shown), shown
    assert not any(secret in as_shown(e.value) for e in [*app.error, *app.sidebar.error, *app.warning])
    assert "A model and a flag store are needed" in app.warning[0].value


def test_skip_moves_to_the_next_pair_without_storing_anything(data_dir):
    app = _page("pages/annotate.py", annotator="dr-a")
    first = [m.value for m in app.markdown]
    _button(app, "Skip").click().run()
    assert [m.value for m in app.markdown] != first
    assert _progress_text(app) == "This case: 0 of 30 pairs judged"
    _button(app, "Good match").click().run()
    with AnnotationStore.open(data_dir) as store:
        assert [v.verdict for v in store.verdicts()] == ["good match"]


def _pair(case_id: str, word: str, start: int, rank: int) -> PairKey:
    return PairKey("lrclr-default", case_id, "a" * 64, "b" * 64, 0, word, start, start + len(word), rank, 0, 0,
                   (0.0, 0.0, 10.0, 10.0))


def test_quality_shows_counts_agreement_and_opens_the_worst_case_in_review(data_dir):
    worst = load_gallery()[3].id
    pairs = [_pair(worst, "effusion", 10 * i, i + 1) for i in range(4)]
    with AnnotationStore.open(data_dir) as store:
        for pair, a, b in zip(pairs, ["bad match", "bad match", "good match", "unsure"],
                              ["bad match", "good match", "good match", "unsure"]):
            store.record("dr-a", pair, a, "")
            store.record("dr-b", pair, b, "<b>not bold</b>")
    app = _page("pages/quality.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Verdicts": "8", "Bad match": "3", "Good match": "3", "Unsure": "2"}
    agreement = app.dataframe[1].value
    # 3 of 4 pairs agree; kappa by hand: po = 3/4, pe = (2*1 + 1*2 + 1*1)/16 = 5/16 -> (12/16-5/16)/(11/16) = 7/11
    assert agreement["pairs in common"].tolist() == [4]
    assert agreement["Cohen's kappa"].tolist() == [round(7 / 11, 3)]
    assert "<b>not bold</b>" in app.dataframe[0].value["comment"].tolist()
    assert [d.label for d in app.get("download_button")] == [
        "Verdicts and history (JSON)", "Verdicts (CSV)", "History (CSV)"]
    next(b for b in app.button if b.key == f"open-{worst}").click().run()
    assert not app.exception
    assert app.session_state["review-demo"] == worst
    assert app.title[0].value == "Review"


def test_quality_with_an_empty_store_says_what_to_do(data_dir):
    app = _page("pages/quality.py")
    assert "No verdicts yet" in app.info[0].value


def test_an_annotator_already_in_the_store_can_be_chosen_instead_of_typed(data_dir):
    with AnnotationStore.open(data_dir) as store:
        store.record("dr-known", _pair("nih-01-cardiomegaly", "heart", 0, 1), "good match", "")
    app = _page("pages/annotate.py")
    app.selectbox(key="annotate-known").set_value("dr-known").run()
    assert not app.exception
    # Picking only proposes the name (issue #19: someone else's name was one accidental click away).
    assert app.session_state["annotator"] == "" and not any("This case:" in c.value for c in app.caption)
    next(b for b in app.button if b.key == "annotate-known-confirm").click().run()
    assert app.session_state["annotator"] == "dr-known"
    assert any("Verdicts are recorded as dr\\-known" in c.value for c in app.sidebar.caption)
    assert _progress_text(app).startswith("This case: 0 of 30")
