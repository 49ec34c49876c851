"""No page can be served without the shared frame (issue #16): each page's URL opened first on a
fresh server, before any other visit.

Streamlit also serves ``pages/*.py`` by themselves: on a fresh server the first visit to
``/annotate`` runs ``pages/annotate.py`` without ``app.py``. Each page draws the frame itself
(``pages/parts/frame.py``), so even then it has the sign-in, the sidebar and the model, and the
app's menu: before, such a visit showed Streamlit's menu of file names ("app", "annotate", ...),
on the sign-in screen too, to every session until someone opened the root URL.
"""

from __future__ import annotations

import pytest

from lrclr.deployment.logins import add_user
from tests.support.browser import ARTIFACTS, chromium_page, require_browser, running_app, wait_until_idle

pytestmark = pytest.mark.browser  # every test here drives chromium

PAGES = {"": "Review", "/annotate": "Annotate", "/quality": "Quality", "/batch": "Batch", "/model_card": "Model"}


@pytest.mark.slow  # 16-22 s a page on 2 busy cores (each starts its own server)
@pytest.mark.parametrize("path, title", PAGES.items(), ids=[p.strip("/") or "review" for p in PAGES])
def test_a_fresh_servers_first_visit_to_a_page_gets_the_sign_in_then_the_shared_sidebar(tmp_path, path, title):
    sync_api = require_browser()
    credentials = tmp_path / "users.toml"
    add_user(credentials, "dr_ann", "annotator", "battery staple")
    settings = tmp_path / "deployment.toml"
    settings.write_text(f'[auth]\ncredentials = "{credentials}"\n[flag_store]\nfolder = "{tmp_path / "flags"}"\n')
    with running_app(tmp_path / "unused", {"LRCLR_SETTINGS": str(settings)}) as url, \
            chromium_page(sync_api) as page:
        page.goto(url + path)  # the server's very first visit
        page.get_by_role("button", name="Sign in").wait_for()
        wait_until_idle(page)
        assert page.get_by_role("heading", name=title, exact=True, level=1).count() == 0
        assert _menu(page) == []  # no menu before sign-in
        page.get_by_role("textbox", name="User name").fill("dr_ann")
        page.get_by_role("textbox", name="Password").fill("battery staple")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name=title, exact=True, level=1).wait_for()
        wait_until_idle(page)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("Signed in as dr_ann (annotator)").wait_for()
        assert sidebar.get_by_text("Verdicts are recorded as dr_ann.").count() == 1
        sidebar.get_by_text("lrclr-default").first.wait_for(timeout=240_000)  # the model loaded for this page
        page.screenshot(path=str(ARTIFACTS / f"first-visit-{path.strip('/') or 'review'}.png"))
        assert _menu(page) == list(PAGES.values())
        other = "Quality" if title != "Quality" else "Batch"
        sidebar.get_by_role("link", name=other).click()  # the menu leads to the app's pages
        page.get_by_role("heading", name=other, exact=True, level=1).wait_for()
        wait_until_idle(page)
        assert _menu(page) == list(PAGES.values())


def _menu(page) -> list[str]:
    """The page menu's entries as the sidebar shows them."""
    return page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()
