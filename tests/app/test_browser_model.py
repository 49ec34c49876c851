"""The Model page in a real browser (Debian chromium + Playwright, see tests/support/browser.py): reached from
the sidebar link, its ROC plot is really drawn. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import json

import pytest

from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.browser import ARTIFACTS, chromium_page, wait_until_idle

pytestmark = pytest.mark.browser  # every test here drives chromium


@pytest.mark.slow  # 24 s on 2 busy cores
def test_the_model_page_draws_the_roc_curves_of_the_loaded_model(app_url):
    sync_api, url = app_url
    card = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text(encoding="utf-8"))
    result = next(iter(card["metrics"].values()))["result"]  # the first evaluation tab, which the page opens on
    first = result["findings"][0]["finding"]
    with chromium_page(sync_api) as page:
        page.goto(url)
        # The Review page is up (the model loads first: slow on a busy 2-core machine).
        page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=240_000)
        wait_until_idle(page)
        page.get_by_role("link", name="Model", exact=True).click()
        page.get_by_role("heading", name="ROC curves").first.wait_for(timeout=120_000)
        wait_until_idle(page)
        chart = page.locator("[data-testid='stPlotlyChart']").filter(has_text=f"ROC: {first}").first
        chart.scroll_into_view_if_needed()
        chart.locator(".js-plotly-plot .scatterlayer .trace path.js-line").first.wait_for()
        page.wait_for_timeout(500)
        chart.screenshot(path=str(ARTIFACTS / "model-1-roc.png"))
        page.screenshot(path=str(ARTIFACTS / "model-2-page.png"), full_page=True)
        lines = chart.locator(".scatterlayer .trace path.js-line")
        assert lines.count() == 3  # the loaded model, the bundled baseline, chance
        # A drawn ROC is a staircase (plotly merges collinear points): many vertices, not a stub.
        drawn = lines.first.get_attribute("d") or ""
        assert drawn.startswith("M") and drawn.count("L") >= 5, drawn[:200]
        legend = chart.locator(".legend").text_content() or ""  # an SVG group: text, not inner text
        assert f"AUC {result['findings'][0]['auc']:.3f}" in legend and "chance" in legend
