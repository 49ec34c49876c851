"""How long a radiologist waits in the Review page, measured in a real browser.

    python -m benchmarks.app_latency --repeats 2 --words 5 --out-json docs/benchmarks/app_latency.json

Starts ``streamlit run app.py`` with the bundled model, drives Debian chromium with Playwright and
times, from the click to the moment the browser holds the new overlay image (the click on a case's
thumbnail button in the gallery, or on a word):

* cold start: from launching the server to the first demo case's overlay on screen (model load and
  the first encoding included; the browser is already running, as a user's would be);
* opening a demo case: first visit (the image is encoded) and revisit (the encoding is cached);
* choosing a report word: the heatmap redraw.

The floor, measured in the same run and process-free of the browser, is the model's own work for a
case: ``encode_case`` + ``explain`` on the same images. The app's ratio to it is what the page adds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import emit, git_commit
from lrclr.demo import load_gallery
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.browser import (
    chromium_page,
    demo_case_button,
    open_review_tab,
    require_browser,
    running_app,
    wait_until_idle,
)

# A short signature of the viewer's image (length + sampled characters of its data URI): it changes
# exactly when the browser has received and placed a new overlay.
_SIGNATURE_JS = """() => {
  const image = document.querySelector("[data-testid='stPlotlyChart'] image");
  if (!image) return "";
  const href = image.getAttribute("href") || "";
  let hash = 0;
  for (let i = 0; i < href.length; i += 61) hash = (hash * 31 + href.charCodeAt(i)) | 0;
  return href.length + ":" + hash;
}"""


# While the model loads, the viewer already shows the plain radiograph ("loading the model…"); the
# cold start ends when the model's overlay and its caption have replaced it.
_OVERLAY_SHOWN_JS = f"""() => ({_SIGNATURE_JS})() !== '' &&
  [...document.querySelectorAll("[data-testid='stCaptionContainer']")]
    .some(c => c.innerText.includes("no heat map"))"""


def _signature(page) -> str:
    return page.evaluate(_SIGNATURE_JS)


def _timed_until_new_overlay(page, action, prepare=None) -> float:
    """Seconds from ``action`` (a click) to the new overlay; ``prepare`` runs untimed before it."""
    if prepare is not None:
        prepare()
    before = _signature(page)
    start = time.perf_counter()
    action()
    page.wait_for_function(f"(before) => ({_SIGNATURE_JS})() !== before && ({_SIGNATURE_JS})() !== ''",
                           arg=before, timeout=120_000)
    elapsed = time.perf_counter() - start
    wait_until_idle(page, settle_ms=100)
    return elapsed


def _show_gallery(page, case) -> None:
    """The gallery sits below the viewer: bring the case's thumbnail into view (the reader's scroll)."""
    demo_case_button(page, case.id).scroll_into_view_if_needed()


def _choose_case(page, case) -> None:
    demo_case_button(page, case.id).click()


def _click_word(page, index: int) -> None:
    page.locator("[data-testid='stButtonGroup']").first.locator("button").nth(index).click()


def measure_app(cases, words_per_case: int) -> dict:
    sync_api = require_browser()
    launch = time.perf_counter()
    with tempfile.TemporaryDirectory() as data_dir, chromium_page(sync_api) as page:
        browser_launch = time.perf_counter() - launch
        start = time.perf_counter()
        with running_app(Path(data_dir)) as url:
            page.goto(url)
            page.wait_for_function(_OVERLAY_SHOWN_JS, timeout=300_000)
            cold_start = time.perf_counter() - start
            wait_until_idle(page)
            first, revisit, word = [], [], []
            # The page opens on the first case (encoded during the cold start): first visits are
            # the others, each opened from the Findings tab (the page's default) and followed by
            # word clicks in the Report words tab; the revisits then go round all of them from the
            # Report words tab, whose word buttons the browser redraws for each case.
            for visit, order, tab in ((first, cases[1:], "Findings"), (revisit, cases, "Report words")):
                for case in order:
                    # Timed from the click on the case's thumbnail button: scrolling to it is the
                    # user's own gesture.
                    visit.append(_timed_until_new_overlay(
                        page, lambda: _choose_case(page, case),
                        prepare=lambda: (open_review_tab(page, tab), _show_gallery(page, case))))
                    if visit is first:
                        for index in range(words_per_case):
                            word.append(_timed_until_new_overlay(page, lambda: _click_word(page, index),
                                                                       prepare=lambda: open_review_tab(page, "Report words")))
    return {"cold_start_s": cold_start, "browser_launch_s": browser_launch,
            "open_case_first_visit_s": first, "open_case_revisit_s": revisit,
            "choose_word_s": word}


def measure_floor(cases, repeats: int) -> list[float]:
    """encode_case + explain for each case, warm (after one untimed pass)."""
    model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)
    images = [(case.load_image(), case.report_text()) for case in cases]
    for image, report in images:
        model.explain(model.encode_case(image), report)
    times = []
    for _ in range(repeats):
        for image, report in images:
            start = time.perf_counter()
            model.explain(model.encode_case(image), report)
            times.append(time.perf_counter() - start)
    return times


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(values), "median_s": statistics.median(values),
            "p90_s": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))], "max_s": ordered[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="floor passes over the cases")
    parser.add_argument("--words", type=int, default=5, help="report words clicked per case")
    parser.add_argument("--cases", type=int, default=0, help="first N demo cases (0: all)")
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    cases = [c for c in load_gallery() if c.report_text()]
    cases = cases[: args.cases] if args.cases else cases
    app = measure_app(cases, args.words)
    floor = summary(measure_floor(cases, args.repeats))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"), "commit": git_commit(), "cases": len(cases),
        "command": "python -m benchmarks.app_latency " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cold_start_s": app["cold_start_s"], "browser_launch_s": app["browser_launch_s"],
        "floor_encode_and_explain": floor,
        **{name: summary(app[name]) for name in ("open_case_first_visit_s", "open_case_revisit_s", "choose_word_s")},
    }
    for name in ("open_case_first_visit_s", "open_case_revisit_s", "choose_word_s"):
        result[name]["ratio_to_floor_median"] = result[name]["median_s"] / floor["median_s"]
    emit(result, args.out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
