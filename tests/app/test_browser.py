"""The real app in a real browser: Debian chromium driven by Playwright (see tests/support/browser.py).

Screenshots are written to test-artifacts/browser/ for a person to look at.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from lrclr.demo import load_gallery
from lrclr.trust.map_checks import phrase_specificity, reference_maps
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.trust.case_findings import word_map
from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.browser import (
    ARTIFACTS,
    chromium_page,
    demo_case_button,
    open_review,
    open_review_tab,
    screenshot_array,
    wait_until_idle,
)

pytestmark = pytest.mark.browser  # every test here drives chromium

HOSTILE_REPORT = ('Small effusion. <script>window.__xss = 1</script> '
                  '<img src=x onerror="window.__xss = 2"> **bold** [link](javascript:alert(1))')


@pytest.fixture
def page(app_url):
    sync_api, url = app_url
    with chromium_page(sync_api) as page:
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        open_review(page, url)
        page.dialogs = dialogs
        yield page


def _viewer(page):
    """The radiograph viewer (its chart has the key "viewer"), never another chart on the page."""
    viewer = page.locator(".st-key-viewer [data-testid='stPlotlyChart']")
    viewer.wait_for()
    return viewer


def _pill(page, text: str):
    """A word or region button (st.pills), by its exact visible text."""
    return page.locator("[data-testid='stButtonGroup'] button").filter(
        has_text=re.compile(f"^{re.escape(text)}$")).first


def _words_by_specificity(case) -> tuple[list[str], list[str]]:
    """The case's words whose map the bundled model makes depend on the word (the page paints
    those), and the words whose map is the case's whatever the word (the page does not)."""
    model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)
    case_image = model.encode_case(case.load_image())
    explanation = model.explain(case_image, case.report_text(), findings=())
    references = reference_maps(model, case_image)
    valid = case_image.features.valid[0].cpu().numpy().reshape(case_image.features.grid)
    specific, unspecific = [], []
    texts = [w.text for w in explanation.words]
    for index, text in enumerate(texts):
        if text.isalpha() and len(text) > 4 and texts.count(text) == 1:
            chosen = specific if phrase_specificity(word_map(explanation, index), references, valid).specific else unspecific
            chosen.append(text)
    return specific, unspecific


def test_the_tour_quotes_the_models_card_on_a_fresh_servers_first_page(page):
    """This module's server is fresh, so the model was still loading when this page was first drawn:
    the tour once said "this model's card validates no finding" then (it was drawn before the page)."""
    tour = page.locator(".st-key-tour").inner_text()
    assert "cross-validated AUC is" in tour and "validates no finding" not in tour


def test_a_demo_case_opens_and_choosing_a_word_changes_the_heatmap(page):
    case = load_gallery()[1]  # not the one the page opens on, so the test really opens a case
    specific, _ = _words_by_specificity(case)
    assert specific, "the bundled model's maps depend on none of this case's words"
    demo_case_button(page, case.id).click()
    wait_until_idle(page)
    assert page.get_by_role("textbox", name="Report").input_value() == case.report_text()
    before = screenshot_array(_viewer(page), ARTIFACTS / "review-1-demo-case.png")
    open_review_tab(page, "Report words")
    word = specific[0]
    _pill(page, word).click()
    page.get_by_text(f"heat map of the word '{word}'").first.wait_for()
    wait_until_idle(page)
    after = screenshot_array(_viewer(page), ARTIFACTS / "review-2-word-heatmap.png")
    page.screenshot(path=str(ARTIFACTS / "review-3-page.png"))
    assert before.shape == after.shape
    changed = np.abs(after - before).max(axis=-1) > 30
    # The heatmap colours a real part of the radiograph, not a few anti-aliased pixels.
    assert changed.mean() > 0.02, f"only {changed.mean():.2%} of the viewer changed"


def test_a_report_with_script_and_img_tags_is_shown_as_literal_text(page):
    box = page.get_by_role("textbox", name="Report")
    box.fill(HOSTILE_REPORT)
    box.press("Control+Enter")
    wait_until_idle(page)
    open_review_tab(page, "Report words")
    page.screenshot(path=str(ARTIFACTS / "review-4-hostile-report.png"))
    assert page.evaluate("window.__xss") is None
    assert page.dialogs == []
    app = page.locator("[data-testid='stMain']")
    assert app.locator("img[src='x']").count() == 0 and app.locator("script:has-text('__xss')").count() == 0
    assert app.locator("a[href^='javascript']").count() == 0
    assert app.locator("strong:has-text('bold')").count() == 0  # markdown was not interpreted either
    # The report's words are buttons with plain text (punctuation is not a word); the box keeps it all.
    assert _pill(page, "script").count() == 1 and _pill(page, "bold").count() == 1
    assert box.input_value() == HOSTILE_REPORT


@pytest.mark.slow  # 21 s on 2 busy cores
def test_a_verdict_given_with_a_keyboard_shortcut_appears_on_the_quality_page(page):
    page.get_by_role("link", name="Annotate").click()
    wait_until_idle(page)
    name = page.get_by_role("textbox", name="Your name or ID")
    name.fill("reader-kbd")
    name.press("Enter")
    page.get_by_role("button", name="Bad match").wait_for()
    wait_until_idle(page, settle_ms=1000)  # the shortcut listens once the button is mounted
    shown_sentence = page.get_by_text("in its sentence").first.inner_text()
    # No click elsewhere first: once the name is given its box leaves the page, and the focus with
    # it, so the key records a verdict instead of typing into the name (issue #19: "reader-kbdb").
    page.get_by_text("Verdicts are recorded as reader-kbd.").wait_for()
    assert page.get_by_role("textbox", name="Your name or ID").count() == 0
    page.keyboard.press("b")
    page.get_by_text("This case: 1 of 30 pairs judged").wait_for()
    page.screenshot(path=str(ARTIFACTS / "annotate-1-after-shortcut.png"))
    # At 1600x1000 the pair being judged, its region on the image and its buttons, is in view
    # without scrolling (issue #19: it started below the fold, under the case picker).
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.mouse.wheel(0, -5000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "annotate-2-1600x1000.png"))
    buttons = page.get_by_role("button", name="Bad match").bounding_box()
    region_image = page.locator("[data-testid='stImage'] img").first.bounding_box()
    assert buttons["y"] + buttons["height"] < 1000 and region_image["y"] + 0.5 * region_image["height"] < 1000
    assert shown_sentence.startswith("Word ")
    page.get_by_role("link", name="Quality").click()
    page.get_by_text("Latest verdicts").wait_for()
    wait_until_idle(page)
    page.screenshot(path=str(ARTIFACTS / "quality-1-verdict.png"))
    table = page.get_by_test_id("stDataFrame").first
    table.wait_for()
    # Glide data grid draws cells on a canvas; its accessible table mirror holds the text.
    cells = table.locator("[role='gridcell']").all_inner_texts()
    assert "reader-kbd" in cells and "bad match" in cells
