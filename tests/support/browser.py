"""Run the real app (``streamlit run app.py``) and drive it with Debian chromium through Playwright.

Playwright's own browser download does not work on these machines, so the system chromium is used.
Outside CI a machine without it skips the browser tests with the reason; ``.ci/run`` installs it and
sets ``LRCLR_REQUIRE_BROWSER=1`` so that a missing browser fails there instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.marks import require_mark
from tests.support.paths import REPO_ROOT
from tests.support.servers import free_port

CHROMIUM = Path(os.environ.get("LRCLR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("LRCLR_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "browser"
STARTUP_TIMEOUT_S = 120


def require_browser():
    """The Playwright module, or a skip (a failure under ``LRCLR_REQUIRE_BROWSER=1``)."""
    require_mark("browser", "starts the browser")  # before the skip: on every machine
    problem = None
    try:
        from playwright import sync_api
    except ImportError:
        problem = "the playwright package is not installed (pip install -r requirements.txt)"
    if problem is None and not CHROMIUM.exists():
        problem = f"no chromium at {CHROMIUM} (apt-get install chromium, or set LRCLR_CHROMIUM)"
    if problem:
        if os.environ.get("LRCLR_REQUIRE_BROWSER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return sync_api


@contextmanager
def running_app(data_dir: Path, extra_env: dict[str, str] | None = None):
    """Start the app on a free port; yield its URL; stop it (its log is kept beside the screenshots)."""
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LRCLR_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    env.pop("LRCLR_MODEL", None)
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(ARTIFACTS / "streamlit.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}; see {ARTIFACTS / 'streamlit.log'}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on {url} within {STARTUP_TIMEOUT_S} s")


@contextmanager
def chromium_page(sync_api, width: int = 1600, height: int = 1200):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


IDLE_APP = "[data-testid='stApp'][data-test-script-state='notRunning']"
# One condition, checked in the page at once: the run finished, its status widget is gone and no
# element is greyed as stale. Checked one after another, a run that starts between two checks
# (a widget reporting its value after a redraw) passed the first and was waited on by the last.
_IDLE_NOW = f"""() => document.querySelector("{IDLE_APP}") !== null
    && document.querySelector("[data-testid='stStatusWidget']") === null
    && document.querySelector("[data-stale='true']") === null"""
# What the page was doing, for the failure message when it never became idle.
_PAGE_STATE = """() => ({
    script_state: document.querySelector("[data-testid='stApp']")?.getAttribute('data-test-script-state'),
    status_widget: document.querySelector("[data-testid='stStatusWidget']")?.innerText ?? null,
    stale: [...document.querySelectorAll("[data-stale='true']")].slice(0, 5).map(e =>
        (e.firstElementChild?.getAttribute('data-testid') ?? '?') + ': ' + e.innerText.slice(0, 60)),
})"""
IDLE_TIMEOUT_MS = 120_000


def wait_until_idle(page, settle_ms: int = 300) -> None:
    """Wait for Streamlit's script run to finish.

    The app root's script state is the signal: the 'Running' status widget appears only after a
    delay, so waiting for it to go away can return in the middle of a short run (CI once took a
    screenshot while the viewer was still empty and caught the findings chart instead).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_timeout(settle_ms)
    try:
        page.wait_for_function(_IDLE_NOW, timeout=IDLE_TIMEOUT_MS, polling=100)
    except PlaywrightTimeout:
        shot = ARTIFACTS / "not-idle.png"
        page.screenshot(path=str(shot))
        raise AssertionError(f"the app was not idle after {IDLE_TIMEOUT_MS // 1000} s: "
                             f"{page.evaluate(_PAGE_STATE)} (page: {shot}; server log: "
                             f"{ARTIFACTS / 'streamlit.log'})") from None
    page.wait_for_timeout(settle_ms)


def screenshot_array(locator, path: Path, attempts: int = 5) -> np.ndarray:
    """An element's pixels. Streamlit may replace the element while its figure re-renders after a
    run, so a screenshot of a detached element is retried on the new one."""
    for attempt in range(attempts):
        try:
            locator.screenshot(path=str(path))
            break
        except Exception as error:  # playwright's Error: "Element is not attached to the DOM"
            if "not attached" not in str(error) or attempt == attempts - 1:
                raise
            locator.page.wait_for_timeout(500)
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


# Counts the script runs that start from now on. The app's script state is an attribute of its root,
# so an observer sees every change, even a run shorter than one poll of wait_for_function.
_COUNT_RUNS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    window.__runsStarted = 0;
    window.__runWatch?.disconnect();
    window.__runWatch = new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running') window.__runsStarted += 1; });
    window.__runWatch.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def click_and_wait_for_its_run(page, locator, timeout_ms: int = 60_000) -> None:
    """Click something that reruns the script, then wait until that run has started and ended.

    ``wait_until_idle`` alone can return before the click's run has begun: the browser changes the
    tab (or the widget) at once, while the server's run starts later under load, so the page read
    in between is the previous run's (a test once read the Regions tab's sliders as the Findings')."""
    page.evaluate(_COUNT_RUNS)
    locator.click()
    page.wait_for_function("() => window.__runsStarted > 0", timeout=timeout_ms, polling=50)
    wait_until_idle(page, settle_ms=100)


def open_review_tab(page, name: str) -> None:
    """Choose a Review tab; choosing one reruns the page, which draws only the open tab."""
    tab = page.get_by_role("tab", name=name)
    if tab.get_attribute("aria-selected") != "true":
        click_and_wait_for_its_run(page, tab)


def demo_case_button(page, case_id: str, key: str = "review"):
    """The gallery's button that opens a demo case (each thumbnail's finding caption)."""
    # .first: while a run redraws the gallery the old button can still be there beside the new one.
    return page.locator(f".st-key-{key}-pick-{case_id} button").first


def open_review(page, url: str) -> None:
    """Open the app and wait until the Review page's viewer is drawn and the run has ended."""
    page.goto(url)
    page.wait_for_selector(".st-key-viewer [data-testid='stPlotlyChart']", timeout=240_000)
    wait_until_idle(page)

