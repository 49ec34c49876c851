"""``python -m train compose-reports``: a report for every NIH image, assembled from real OpenI
sentences that state exactly its labelled findings (see ``train.synthetic.composed_reports``).

Writes one JSON line per image (image, labels, text, sentences with OpenI report id and sentence
index, seed, missing) and prints how many reports are complete and the per-finding sentence pools;
findings no clean sentence exists for are listed, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nih", type=Path, default=SHARED / "nih-cxr14-sample",
                        help="NIH folder with labels.csv (or the CSV itself)")
    parser.add_argument("--openi", type=Path, default=SHARED / "openi-reports" / "NLMCXR_reports.tgz",
                        help="OpenI reports: the .tgz or a folder of XML")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output JSONL")
    parser.add_argument("--stats", type=Path, help="also write the statistics as JSON here")


def run(args: argparse.Namespace) -> int:
    from train.synthetic.composed_reports import SentenceBank, read_nih_labels
    from lrclr.reports.text import load_openi_reports

    labels_csv = args.nih / "labels.csv" if args.nih.is_dir() else args.nih
    for path in (labels_csv, args.openi):
        if not path.exists():
            print(f"not found: {path}")
            return 2
    bank = SentenceBank.from_reports(load_openi_reports(args.openi))
    rows = read_nih_labels(labels_csv)
    missing: Counter[str] = Counter()
    complete = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for image, findings in rows:
            report = bank.compose(image, findings, args.seed)
            complete += report.complete
            missing.update(report.missing)
            record = {"image": image, **asdict(report), "complete": report.complete}
            record["labels"] = list(report.labels) or ["No Finding"]
            out.write(json.dumps(record) + "\n")
    stats = {"images": len(rows), "complete": complete, "seed": args.seed,
             "sentence_pools": bank.pool_sizes(), "images_missing_a_sentence_for": dict(missing)}
    print(f"composed {len(rows)} reports, {complete} complete -> {args.out}")
    print("sentence pools (clean single-finding sentences; normal):", stats["sentence_pools"])
    if missing:
        print("findings without a clean sentence (image counts):", dict(missing))
    if args.stats:
        args.stats.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return 0
