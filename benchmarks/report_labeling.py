"""Report labelling time against report length, for reports without sentence ends (issue #17).

    python -m benchmarks.report_labeling --sizes 20000 200000 2000000 --repeats 5 --out-json docs/benchmarks/report_labeling.json

A "single-sentence" report is real OpenI sentences (``../shared/data/openi-reports``; synthetic
report phrases when absent) in random order with every ``.``, ``!`` and ``?`` removed, so the
whole text is one sentence, the case that took minutes before. The floor, measured in the same run,
is the same sentences with their ends kept: the ordinary case. Each size is labelled ``--repeats``
times, each time from a different shuffle (so that the labeler's per-sentence cache cannot help),
and the median is reported. ``lrclr.reports.text.MAX_REPORT_CHARS`` (20,000) is the longest report the
app, Batch and the CLI read; the larger sizes measure the labeler itself.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args()
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
    result = {"source": source, "repeats": args.repeats, "python": platform.python_version(),
              "machine": platform.machine(), "rows": rows}
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
