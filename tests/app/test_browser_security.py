"""A shared deployment in a real browser: logins, and user text that stays text (issue #17).

Each test starts its own server (tests/support/browser.py) with the settings it needs.
"""

from __future__ import annotations

import pytest

from lrclr.annotations.store import AnnotationStore
from lrclr.deployment.logins import add_user
from tests.support.browser import ARTIFACTS, chromium_page, require_browser, running_app, wait_until_idle

pytestmark = pytest.mark.browser  # every test here drives chromium


def _record_bad_match(page) -> None:
    page.get_by_role("button", name="Bad match").wait_for()
    wait_until_idle(page, settle_ms=1000)  # the shortcut listens once the button is mounted
    page.locator("h1").first.click()  # focus leaves any text box, so the key goes to the shortcut
    page.keyboard.press("b")
    page.get_by_text("This case: 1 of").wait_for()


@pytest.mark.slow  # 31 s on 2 busy cores
def test_a_login_deployment_refuses_an_unauthenticated_browser_and_records_the_signed_in_name(tmp_path):
    sync_api = require_browser()
    credentials, flags = tmp_path / "users.toml", tmp_path / "flags"
    add_user(credentials, "dr_ann", "annotator", "battery staple")
    settings = tmp_path / "deployment.toml"
    settings.write_text(f'[auth]\ncredentials = "{credentials}"\n[flag_store]\nfolder = "{flags}"\n')
    with running_app(tmp_path / "unused", {"LRCLR_SETTINGS": str(settings)}) as url, \
            chromium_page(sync_api) as page:
        for path in ("", "/annotate", "/quality", "/batch", "/model_card"):  # every page, first visit included
            page.goto(url + path)
            page.get_by_role("button", name="Sign in").wait_for()
            wait_until_idle(page)
            assert page.locator(".st-key-viewer").count() == 0 and page.get_by_role("link", name="Annotate").count() == 0
            assert page.get_by_label("Model").count() == 0
        page.screenshot(path=str(ARTIFACTS / "login-1-sign-in.png"))
        page.get_by_role("textbox", name="User name").fill("dr_ann")
        page.get_by_role("textbox", name="Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Wrong user name or password.").wait_for()
        page.get_by_role("textbox", name="Password").fill("battery staple")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Annotate").click()
        wait_until_idle(page)
        assert page.get_by_role("textbox", name="Your name or ID").count() == 0  # no typing or picking names
        page.get_by_text("Verdicts are recorded as dr_ann.").wait_for()
        _record_bad_match(page)
        page.screenshot(path=str(ARTIFACTS / "login-2-verdict.png"))
    verdicts = AnnotationStore.open(flags).verdicts()
    assert [(v.annotator, v.verdict) for v in verdicts] == [("dr_ann", "bad match")]


@pytest.mark.slow  # 36 s on 2 busy cores
def test_an_annotator_name_with_html_is_shown_literally_on_the_quality_page(tmp_path):
    sync_api = require_browser()
    payload = '<a href="https://evil.example/x">me</a><b>bold</b>'
    with running_app(tmp_path / "flags") as url, chromium_page(sync_api) as page:
        page.goto(url + "/annotate")
        name = page.get_by_role("textbox", name="Your name or ID")
        name.wait_for()
        name.fill(payload)
        name.press("Enter")
        _record_bad_match(page)
        page.get_by_role("link", name="Quality").click()
        page.get_by_text("Latest verdicts").wait_for()
        wait_until_idle(page)
        page.get_by_role("tab", name="By annotator").click()
        page.wait_for_timeout(1500)  # plotly lays out the chart of a tab once it is shown
        page.screenshot(path=str(ARTIFACTS / "quality-html-name.png"))
        assert page.locator("a[href*='evil.example']").count() == 0
        assert page.locator(".js-plotly-plot b").filter(has_text="bold").count() == 0
        chart_text = " ".join(t for t in page.locator(".js-plotly-plot").all_inner_texts() if "evil" in t)
        assert "<b>bold</b>" in chart_text.replace("\n", "")
