"""Report labelling time against report length, for reports without sentence ends (issue #17).

    python -m benchmarks.report_labeling --sizes 20000 200000 2000000 --repeats 5 --out-json docs/benchmarks/report_labeling.json

A "single-sentence" report is real OpenI sentences (``../shared/data/openi-reports``; synthetic
report phrases when absent) in random order with every ``.``, ``!`` and ``?`` removed, so the
whole text is one sentence, the case that took minutes before. The floor, measured in the same run,
is the same sentences with their ends kept: the ordinary case. Each size is labelled ``--repeats``
times, each time from a different shuffle (so that the labeler's per-sentence cache cannot help),
and the median is reported. ``lrclr.reports.text.MAX_REPORT_CHARS`` (20,000) is the longest report the
app, Batch and the CLI read; the larger sizes measure the labeler itself.

By default the modules the app's Review page runs with (torch, transformers, pandas, streamlit)
are imported first, so that the heap the labeler works beside is the app's: Python's cyclic garbage
collector walks every tracked object on a full collection, and a bare process (``--heap bare``)
holds a thirtieth of them. The JSON records how many objects were tracked.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import random
import re
import statistics
import time
from pathlib import Path

from lrclr.reports.labeler import label_report
from lrclr.reports.text import load_openi_reports, split_sentences

REPO_ROOT = Path(__file__).resolve().parents[1]
OPENI = REPO_ROOT.parent / "shared" / "data" / "openi-reports" / "NLMCXR_reports.tgz"
SYNTHETIC = ("Heart size is mildly enlarged.", "Small left pleural effusion.", "No pneumothorax.",
             "There is no focal consolidation.", "Possible right lower lobe nodule.", "Lungs are clear.")


def sentences() -> tuple[list[str], str]:
    if OPENI.exists():
        reports = load_openi_reports(OPENI)
        return [s.text for r in reports for s in split_sentences(r.text())], "OpenI sentences"
    return list(SYNTHETIC), "synthetic phrases (OpenI absent)"


def report(pool: list[str], characters: int, seed: int, ends: bool) -> str:
    rng = random.Random(seed)
    parts, length = [], 0
    while length < characters:
        text = rng.choice(pool)
        parts.append(text if ends else re.sub(r"[.!?]", "", text))
        length += len(parts[-1]) + 1
    return " ".join(parts)[:characters]


# What the app's process holds while it labels a report: torch and the model code, transformers
# (its lazy module loads the model classes when one is asked for), pandas and streamlit.
APP_MODULES = ("lrclr.model.lrclr_model", "transformers", "pandas", "streamlit")


def load_app_heap() -> None:
    for name in APP_MODULES:
        importlib.import_module(name)
    importlib.import_module("transformers").AutoModel  # noqa: B018  (loads the model classes)


def median_seconds(pool, characters: int, repeats: int, ends: bool) -> float:
    times = []
    for repeat in range(repeats):
        text = report(pool, characters, seed=1000 * repeat + characters, ends=ends)
        start = time.perf_counter()
        label_report(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 2_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heap", choices=["app", "bare"], default="app",
                        help="app: import what the app runs with first (default); bare: the labeler alone")
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args()
    if args.heap == "app":
        load_app_heap()
    tracked_before = len(gc.get_objects())  # the heap beside which the labeler works
    pool, source = sentences()
    label_report("warm up: compile the pattern tables")
    rows = []
    for size in args.sizes:
        single = median_seconds(pool, size, args.repeats, ends=False)
        floor = median_seconds(pool, size, args.repeats, ends=True)
        rows.append({"characters": size, "single_sentence_s": round(single, 3), "with_sentence_ends_s": round(floor, 3),
                     "ratio_to_floor": round(single / floor, 2), "us_per_character": round(1e6 * single / size, 2)})
        print(f"{size:>9,} chars: one sentence {single:.3f} s, with sentence ends {floor:.3f} s "
              f"(x{single / floor:.2f}), {1e6 * single / size:.2f} us per character", flush=True)
    result = {"source": source, "repeats": args.repeats, "heap": args.heap, "tracked_objects": tracked_before,
              "python": platform.python_version(),
              "machine": platform.machine(), "rows": rows}
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
