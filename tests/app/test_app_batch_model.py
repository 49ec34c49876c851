"""The Batch and Model pages and the demo tour, with Streamlit's AppTest.

The Model page runs on the bundled models (its card must be shown exactly as model_card.json holds
it); the Batch page runs on a tiny random model so that many files score in seconds, and its CSV is
compared byte for byte with ``python -m lrclr predict`` on the same files and model.
"""

from __future__ import annotations

import io
import os
import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.bundled import DEFAULT_MODEL_DIR

# The evaluation both bundled cards hold on the same data (train evaluate --card-key phantoms), so
# the Model page shows them side by side with paired intervals.
SHARED = "phantoms"
from pages.parts.shared import app_thread_count
from tests.support.app_pages import as_shown, captured_downloads, deployment_settings
from tests.support.paths import REPO_ROOT, TEST_DATA

BUNDLED = DEFAULT_MODEL_DIR.parent
GOOD = ("nih_00000075_128_gray8.png", "nih_00000075_128_gray16.png", "nih_00000075_128_rgba.png",
        "siim_pneumothorax_example.dcm", "monochrome1_example.dcm")
BAD = {"empty.png": "the file is empty", "notes.png": "not a PNG, JPEG or DICOM",
       "truncated_siim_20k.dcm": "truncated or damaged"}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return LRCLRModel(tiny_config()).save_pretrained(tmp_path_factory.mktemp("models") / "tiny-model")


def _app(monkeypatch, tmp_path, model_dir=None, page: str | None = None, server_folder=None) -> AppTest:
    if server_folder is not None:  # the deployment lets the Batch page read this folder
        deployment_settings(monkeypatch, tmp_path, f"[batch]\nserver_folders = [{json.dumps(str(server_folder))}]\n")
    if model_dir is None:
        monkeypatch.delenv("LRCLR_MODEL", raising=False)
    else:
        monkeypatch.setenv("LRCLR_MODEL", str(model_dir))
    monkeypatch.setenv("LRCLR_DATA_DIR", str(tmp_path / "flags"))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=300)
    app.run()
    if page is not None:
        app.switch_page(page).run()
    assert not app.exception
    return app


def _button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def _figures(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


# ---- Model page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shown, other", [("lrclr-default", "baseline-default"), ("baseline-default", "lrclr-default")])
def test_the_model_page_shows_the_cards_tables_and_roc_curves_of_the_loaded_model(monkeypatch, tmp_path, shown, other):
    app = _app(monkeypatch, tmp_path, BUNDLED / shown, "pages/model_card.py")
    card = json.loads((BUNDLED / shown / "model_card.json").read_text(encoding="utf-8"))
    other_card = json.loads((BUNDLED / other / "model_card.json").read_text(encoding="utf-8"))
    assert [json.loads(element.value) for element in app.json] == [card]  # exactly the file, nothing added
    facts = dict(zip(*app.dataframe[0].value.T.values))
    assert facts["model id"] == shown and facts["code version"] == card["code_version"]
    assert facts["saved"] == card["saved"] and facts["image tower"] == "efficientnet-lite0 (package)"
    codes = [c.value for c in app.code]
    assert card["training_command"] in codes and card["metrics"][SHARED]["command"] in codes
    # Per-finding AUC beside the other bundled model's, from both cards.
    label = lambda c: f"{c['model_id']} ({'LRCLR' if c['metrics'][SHARED]['result']['uses_regions'] else 'baseline'})"
    both = {f"AUC · {label(card)}", f"AUC · {label(other_card)}"}
    # Every evaluation both cards hold gets such a table (cross-validation, phantoms): take the phantoms'.
    tables = [d.value.set_index("finding") for d in app.dataframe if both <= set(d.value.columns)]
    macro = card["metrics"][SHARED]["result"]["macro"]["auc"]
    auc = next(t for t in tables if t.loc["Macro mean", f"AUC · {label(card)}"] == pytest.approx(macro))
    for source in (card, other_card):
        result = source["metrics"][SHARED]["result"]
        for item in result["findings"]:
            if item["auc"] is None:  # one class only on these images: the page leaves the row out
                assert item["finding"] not in auc.index
                continue
            assert auc.loc[item["finding"], f"AUC · {label(source)}"] == pytest.approx(item["auc"])
        assert auc.loc["Macro mean", f"AUC · {label(source)}"] == pytest.approx(result["macro"]["auc"])
    # The paired CI of (shown - other), from the card; the stored pair is LRCLR - baseline, so it
    # flips (negated, ends swapped) when the baseline is the model shown.
    rows = card["metrics"][SHARED]["paired_differences"]["LRCLR - baseline"]
    for row in rows:
        finding = "Macro mean" if row["finding"] == "macro" else row["finding"]
        if finding not in auc.index:  # a one-class finding: no row, so no interval to show
            continue
        low, high = (row["ci_low"], row["ci_high"]) if shown == "lrclr-default" else (-row["ci_high"], -row["ci_low"])
        assert auc.loc[finding, "95% CI of the difference (paired)"] == f"{low:.3f} – {high:.3f}"
    difference = auc.loc["Macro mean", f"AUC difference ({label(card)} − {label(other_card)})"]
    assert low <= difference <= high  # the point estimate lies inside its own interval
    # The ROC plot draws the card's own points (first finding, both models, then chance).
    first = card["metrics"][SHARED]["result"]["findings"][0]["finding"]
    points = card["metrics"][SHARED]["result"]["roc"][first]
    rocs = [f for f in _figures(app) if f["layout"].get("title", {}).get("text", "").startswith("ROC")]
    roc = next(f for f in rocs if f["data"][0]["x"] == points["fpr"] and f["data"][0]["y"] == points["tpr"])
    assert [t["name"] for t in roc["data"]][-1] == "chance" and len(roc["data"]) == 3
    assert any("Localization examples" == h.value for h in app.header)
    assert any("not a medical device" in m.value.lower() for m in app.markdown)


def test_the_roc_finding_can_be_changed(monkeypatch, tmp_path):
    app = _app(monkeypatch, tmp_path, None, "pages/model_card.py")
    app.selectbox(key=f"roc-{SHARED}").set_value("Edema").run()
    assert not app.exception
    titles = [f["layout"]["title"]["text"] for f in _figures(app) if "title" in f["layout"]]
    assert "ROC: Edema" in titles


def test_a_users_model_without_evaluations_shows_its_card_and_says_so(monkeypatch, tmp_path, tiny_model_dir):
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/model_card.py")
    card = json.loads((tiny_model_dir / "model_card.json").read_text(encoding="utf-8"))
    assert [json.loads(element.value) for element in app.json] == [card]
    assert any("holds no evaluation" in i.value for i in app.info)
    # The localization example still runs this model on the phantom.
    assert any("ground-truth" in as_shown(c.value) for c in app.caption)


# ---- Batch page ----------------------------------------------------------------------------------


@pytest.fixture
def study(tmp_path):
    folder = tmp_path / "study"
    (folder / "more").mkdir(parents=True)
    for name in (*GOOD, *BAD):
        shutil.copy(TEST_DATA / name, folder / name)
    for index in range(4):  # a subfolder: read recursively
        shutil.copy(TEST_DATA / GOOD[0], folder / "more" / f"copy{index}.png")
    return folder


def _run_to_the_end(app: AppTest, limit: int = 50) -> list[str]:
    progress = []
    for _ in range(limit):
        run = app.session_state["batch-run"]
        if not run.active:
            app.run()  # in the browser, the progress fragment's timer triggers this last rerun
            return progress
        progress += [p.proto.text for p in app.progress]
        app.run()
        assert not app.exception
    raise AssertionError("the batch did not finish")


def test_a_folder_batch_lists_results_and_errors_and_its_csv_is_the_clis(monkeypatch, tmp_path, tiny_model_dir, study):
    downloads = captured_downloads(monkeypatch)
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py", server_folder=study)
    app.text_input(key="batch-folder").set_value(str(study)).run()
    _button(app, "Start").click().run()
    progress = _run_to_the_end(app)
    scoring = [text for text in progress if not text.startswith("listing files")]
    assert scoring and all(" / 12 · " in text for text in scoring)
    assert any("ETA" in text for text in progress)
    assert [p.proto.text for p in app.progress] == ["Finished: 12 / 12"]
    results, errors = app.dataframe[0].value, app.dataframe[1].value
    assert len(results) == 9 and sorted(results["file"]) == sorted([*GOOD, *(f"more/copy{i}.png" for i in range(4))])
    assert results["image"].str.startswith("data:image/jpeg;base64,").all()
    assert dict(zip(errors["file"], errors["reason"])).keys() == BAD.keys()
    for name, reason in zip(errors["file"], errors["reason"]):
        assert BAD[name] in reason
    out = tmp_path / "cli.csv"
    # The same torch thread count as the app's: sums split across threads round differently.
    env = {**os.environ, "OMP_NUM_THREADS": str(app_thread_count())}
    cli = subprocess.run([sys.executable, "-m", "lrclr", "predict", str(study), "--model", str(tiny_model_dir),
                          "--device", "cpu", "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300, env=env)
    assert cli.returncode == 0, cli.stderr
    assert downloads["predictions.csv"]() == out.read_bytes()


def test_the_results_filter_by_finding_and_threshold(monkeypatch, tmp_path, tiny_model_dir, study):
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py", server_folder=study)
    app.text_input(key="batch-folder").set_value(str(study)).run()
    _button(app, "Start").click().run()
    _run_to_the_end(app)
    app.selectbox(key="batch-filter-finding").set_value("Effusion").run()
    everything = app.dataframe[0].value
    assert list(everything["Effusion"]) == sorted(everything["Effusion"], reverse=True)
    low, high = everything["Effusion"].min(), everything["Effusion"].max()
    app.slider(key="batch-threshold").set_value(round(float(low), 2)).run()  # at or below every score
    assert len(app.dataframe[0].value) == len(everything)
    app.slider(key="batch-threshold").set_value(round(float(high), 2) + 0.01).run()  # above every score
    assert app.dataframe[0].value.empty
    assert any(as_shown(c.value).startswith(f"0 of {len(everything)} scored studies shown") for c in app.caption)
    # The order is the page's, until the reader sorts by a column header (issue #19: the caption kept
    # saying "highest Effusion first" after any sort).
    assert any("listed highest Effusion first (a click on a column header sorts by that column instead)"
               in as_shown(c.value) for c in app.caption)


def test_a_zip_batch_refuses_unsafe_members_and_cancel_stops_it(monkeypatch, tmp_path, tiny_model_dir):
    image = (TEST_DATA / GOOD[0]).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(20):
            archive.writestr(f"studies/case{index:02d}.png", image)
        archive.writestr("../../etc/escape.png", image)
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py")
    app.radio(key="batch-kind").set_value("ZIP upload").run()
    app.file_uploader(key="batch-zip").set_value(("studies.zip", buffer.getvalue(), "application/zip")).run()
    _button(app, "Start").click().run()  # the first chunk (8 files) is scored in this run
    assert app.session_state["batch-run"].position == 8
    _button(app, "Cancel").click().run()
    assert not app.exception
    assert [p.proto.text for p in app.progress] == ["Cancelled: 8 / 21"]
    assert len(app.dataframe[0].value) == 7  # the refused member sorts first and is an error
    errors = app.dataframe[1].value
    assert list(errors["file"]) == ["../../etc/escape.png"] and "climbs out of the archive" in errors["reason"][0]


def test_open_in_review_hands_the_chosen_file_to_the_review_page(monkeypatch, tmp_path, tiny_model_dir, study):
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py", server_folder=study)
    app.text_input(key="batch-folder").set_value(str(study)).run()
    app.multiselect(key="batch-findings").set_value(["Effusion", "rib fracture"]).run()
    _button(app, "Start").click().run()
    _run_to_the_end(app)
    results = app.session_state["batch-results"]
    index = next(i for i, r in enumerate(results) if r.row.image == "siim_pneumothorax_example.dcm")
    app.selectbox(key="batch-open-choice").set_value(index).run()
    _button(app, "Open in Review").click().run()
    assert not app.exception
    assert app.title[0].value == "Review"
    assert "Opened from the Batch page: siim_pneumothorax_example.dcm" in [t.value for t in app.text]
    findings = app.dataframe[0].value
    # The Review page scored the handed-over DICOM, the batch's typed finding included (issue #19).
    assert len(findings) == 15 and any("rib fracture" in str(name) for name in findings.iloc[:, 0])


# ---- the demo tour -------------------------------------------------------------------------------


def test_the_tour_steps_open_cases_and_can_be_dismissed_and_reopened(monkeypatch, tmp_path, tiny_model_dir):
    app = _app(monkeypatch, tmp_path, tiny_model_dir)
    tour = lambda: [m.value for m in app.sidebar.markdown if m.value.startswith("**Demo tour")]
    assert tour() == ["**Demo tour · 1 of 7: Scores, and how far to trust them**"]
    # A model whose card holds no measurements gets a tour that says so, not one that promises.
    texts = [m.value for m in app.sidebar.markdown]
    assert any("validates no finding" in t for t in texts)
    _button(app, "Next").click().run()
    assert any("holds no map-specificity measurement" in m.value for m in app.sidebar.markdown)
    _button(app, "Next").click().run()
    assert tour() == ["**Demo tour · 3 of 7: Model map against ground truth**"]
    _button(app, "Open this case").click().run()
    assert not app.exception
    assert app.session_state["review-demo"] == "phantom-01-cardiomegaly-edema"
    app.switch_page("pages/batch.py").run()
    assert tour()[0].startswith("**Demo tour · 3 of 7")  # the tour follows the user across pages
    _button(app, "Dismiss").click().run()
    assert tour() == [] and _button(app, "Show the demo tour")
    _button(app, "Show the demo tour").click().run()
    assert tour()[0].startswith("**Demo tour · 3 of 7")
    for _ in range(4):
        _button(app, "Next").click().run()
    _button(app, "Open the Model page").click().run()
    assert app.title[0].value == "Model"


def test_with_default_settings_the_batch_page_offers_no_server_folder(monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.delenv("LRCLR_SETTINGS", raising=False)
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py")
    assert app.radio(key="batch-kind").options == ["ZIP upload"]
    assert not any(t.key == "batch-folder" for t in app.text_input)
    # A folder typed into the session anyway (a crafted request) is not read.
    app.session_state["batch-folder"] = str(REPO_ROOT)
    _button(app, "Start").click().run()
    assert "batch-run" not in app.session_state  # no run was started
    assert any("Upload a ZIP archive first" in as_shown(e.value) for e in app.error)


def test_a_folder_outside_the_allowed_roots_gets_one_message_whether_or_not_it_exists(monkeypatch, tmp_path,
                                                                                       tiny_model_dir, study):
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py", server_folder=study)
    messages = set()
    for typed in ("/etc", "/no/such/folder", str(study / ".." / ".."), f"{study}/../../..", "../.."):
        app.text_input(key="batch-folder").set_value(typed).run()
        _button(app, "Start").click().run()
        errors = [as_shown(e.value) for e in app.error]
        assert len(errors) == 1 and "not a folder the Batch page may read" in errors[0]
        messages.add(errors[0])
    assert len(messages) == 1


def test_cancel_stops_a_folder_listing(monkeypatch, tmp_path, tiny_model_dir):
    big = tmp_path / "big"
    for index in range(300):  # many folders: listing takes several steps
        (big / f"s{index:03d}").mkdir(parents=True)
        shutil.copy(TEST_DATA / GOOD[0], big / f"s{index:03d}" / "a.png")
    from lrclr.batch.sources import FolderWalk

    step = FolderWalk.step
    monkeypatch.setattr(FolderWalk, "step", lambda walk, seconds=0.25: step(walk, 0))  # one folder per step
    app = _app(monkeypatch, tmp_path, tiny_model_dir, "pages/batch.py", server_folder=big)
    app.text_input(key="batch-folder").set_value(str(big)).run()
    _button(app, "Start").click().run()
    app.run()
    assert app.session_state["batch-run"].listing
    assert any(p.proto.text.startswith("listing files: ") for p in app.progress)
    _button(app, "Cancel").click().run()
    assert not app.exception and not app.session_state["batch-run"].active
    assert [p.proto.text for p in app.progress] == ["Cancelled: 0 / 0"]


def test_the_model_pages_peak_is_the_pointing_games_peak(monkeypatch, tmp_path):
    """Issue #19: the page took the upsampled map's argmax, the rule train/evaluation/localization.py documents as wrong."""
    from lrclr.demo import load_gallery
    from lrclr.trust.map_checks import peak_cells
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.findings import finding_phrase
    from lrclr.trust.case_findings import phrase_map

    from lrclr.model.explain import grid_to_image

    app = _app(monkeypatch, tmp_path, None, "pages/model_card.py")
    case = next(c for c in load_gallery() if c.id == app.selectbox(key="card-phantom").value)
    model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)
    encoded = model.encode_case(case.load_image())
    peaks = {}
    for finding in case.mask_findings:
        grid_map = phrase_map(model.explain(encoded, finding_phrase(finding), findings=()))
        valid = encoded.features.valid[0].numpy().reshape(grid_map.shape)
        heat = grid_to_image(grid_map, encoded.letterbox)
        peaks[finding] = (encoded.letterbox.cell_centre(*peak_cells(grid_map, valid)[0], grid_map.shape),
                          tuple(int(i) for i in np.unravel_index(int(np.argmax(heat)), heat.shape)))
    # A finding where the two rules disagree, so that the test tells them apart.
    finding = next(f for f, (cell_rule, upsampled_argmax) in peaks.items() if cell_rule != upsampled_argmax)
    app.selectbox(key=f"card-finding-{case.id}").set_value(finding).run()
    peak_y, peak_x = peaks[finding][0]
    figure = next(f for f in _figures(app) if any(t.get("hovertemplate", "").startswith("peak") for t in f["data"]))
    marker = next(t for t in figure["data"] if t.get("hovertemplate", "").startswith("peak"))
    from lrclr.display import figures as viz

    image = case.load_image()
    scale = viz.to_display_rgb(image.pixels).width / image.original_size[0]  # the figure's display scale
    assert marker["x"][0] == pytest.approx(peak_x * scale) and marker["y"][0] == pytest.approx(peak_y * scale)
