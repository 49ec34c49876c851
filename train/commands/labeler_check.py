"""External check of the report labeler against OpenI's human MeSH indexing.

OpenI reports carry MeSH "major" terms assigned by indexers who never saw this code. A report is
MeSH-positive for a finding when any of its major terms starts with one of the names mapped to
that finding (issue #3's mapping, fixed here, not tuned). The labeler counts as positive only
where it says 1; uncertain (-1) is not positive.

    python -m train labeler-check --openi ../shared/data/openi-reports/NLMCXR_reports.tgz --markdown
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from lrclr.reports.labeler import POSITIVE, label_report
from lrclr.reports.text import OpenIReport, load_openi_reports

MESH_MAP: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": ("Cardiomegaly", "Cardiac Shadow/enlarged"),
    "Atelectasis": ("Pulmonary Atelectasis",),
    "Effusion": ("Pleural Effusion",),
    "Nodule": ("Nodule",),
    "Emphysema": ("Emphysema", "Pulmonary Emphysema"),
    "Edema": ("Pulmonary Edema", "Pulmonary Congestion"),
    "Pneumonia": ("Pneumonia",),
    "Consolidation": ("Consolidation",),
    "Infiltration": ("Infiltrate",),
    "Hernia": ("Hernia, Hiatal",),
    "Fracture": ("Fractures, Bone",),
    "Lung Opacity": ("Opacity", "Airspace Disease", "Density", "Infiltrate", "Consolidation"),
    "Support Devices": ("Catheters, Indwelling", "Implanted Medical Device", "Tube, Inserted",
                        "Medical Device", "Stents", "Surgical Instruments"),
}
SUBSETS = ("all", "dev", "heldout")

# The comparison baseline: a plain keyword list per finding and a negation-word list (a negation
# word anywhere earlier in the same sentence denies the keyword). What a quick script would do.
BASELINE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": ("cardiomegaly", "enlarged heart", "heart is enlarged", "enlarged cardiac"),
    "Atelectasis": ("atelectasis", "atelectatic"),
    "Effusion": ("effusion",),
    "Nodule": ("nodule", "nodular"),
    "Emphysema": ("emphysema",),
    "Edema": ("edema", "congestion"),
    "Pneumonia": ("pneumonia",),
    "Consolidation": ("consolidation",),
    "Infiltration": ("infiltrate", "infiltration"),
    "Hernia": ("hernia",),
    "Fracture": ("fracture",),
    "Lung Opacity": ("opacity", "opacities", "density", "densities", "airspace disease", "infiltrate", "consolidation"),
    "Support Devices": ("catheter", "tube", "line", "pacemaker", "stent", "clip", "device", "wire"),
}
BASELINE_NEGATIONS = ("no", "not", "without", "negative", "free of", "clear of", "resolved")


@dataclass(frozen=True)
class Score:
    finding: str
    mesh_positive: int
    labeler_positive: int
    true_positive: int
    precision: float
    recall: float
    f1: float


def mesh_positive(report: OpenIReport, finding: str) -> bool:
    return any(term.startswith(name) for term in report.mesh_major for name in MESH_MAP[finding])


def in_subset(index: int, subset: str) -> bool:
    """Development half = even positions in report-id order; held-out half = odd positions."""
    return subset == "all" or (index % 2 == 0) == (subset == "dev")


def baseline_positive(text: str) -> set[str]:
    found = set()
    for sentence in re.split(r"(?<=[.!?])\s+", text.lower()):
        for finding, keywords in BASELINE_KEYWORDS.items():
            for keyword in keywords:
                at = sentence.find(keyword)
                if at >= 0 and not any(re.search(rf"\b{n}\b", sentence[:at]) for n in BASELINE_NEGATIONS):
                    found.add(finding)
    return found


def score(truth: list[set[str]], predicted: list[set[str]]) -> list[Score]:
    out = []
    for finding in MESH_MAP:
        t = sum(finding in a for a in truth)
        p = sum(finding in b for b in predicted)
        tp = sum(finding in a and finding in b for a, b in zip(truth, predicted))
        precision = tp / p if p else 0.0
        recall = tp / t if t else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(Score(finding, t, p, tp, precision, recall, f1))
    return out


def macro_f1(scores: list[Score]) -> float:
    return sum(s.f1 for s in scores) / len(scores)


def evaluate(reports: list[OpenIReport], subset: str = "all") -> dict:
    """Per-finding scores of the labeler and the keyword baseline on one subset."""
    chosen = [r for i, r in enumerate(reports) if in_subset(i, subset)]
    truth = [{f for f in MESH_MAP if mesh_positive(r, f)} for r in chosen]
    labeler = [{f for f, s in label_report(r.text()).labels.items() if s == POSITIVE and f in MESH_MAP} for r in chosen]
    baseline = [baseline_positive(r.text()) for r in chosen]
    return {"subset": subset, "reports": len(chosen), "labeler": score(truth, labeler), "baseline": score(truth, baseline)}


def markdown_table(result: dict) -> str:
    lines = [
        f"Reports: {result['reports']} ({result['subset']})",
        "",
        "| finding | MeSH+ | labeler+ | TP | precision | recall | F1 | baseline F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ours, base in zip(result["labeler"], result["baseline"]):
        lines.append(f"| {ours.finding} | {ours.mesh_positive} | {ours.labeler_positive} | {ours.true_positive} | "
                     f"{ours.precision:.3f} | {ours.recall:.3f} | {ours.f1:.3f} | {base.f1:.3f} |")
    lines.append(f"| **macro** | | | | | | **{macro_f1(result['labeler']):.3f}** | {macro_f1(result['baseline']):.3f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--openi", required=True, type=Path, help="OpenI NLMCXR_reports.tgz or a folder of XML")
    parser.add_argument("--subset", choices=SUBSETS, default="all",
                        help="all reports (default), the development half, or the held-out half")
    parser.add_argument("--out-json", type=Path, help="write the scores here as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def run(args: argparse.Namespace) -> int:
    reports = load_openi_reports(args.openi)
    result = evaluate(reports, args.subset)
    if args.out_json:
        payload = {**result, "macro_f1": macro_f1(result["labeler"]), "baseline_macro_f1": macro_f1(result["baseline"]),
                   "labeler": [asdict(s) for s in result["labeler"]],
                   "baseline": [asdict(s) for s in result["baseline"]], "mesh_map": MESH_MAP}
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        print(markdown_table(result))
    else:
        for s in result["labeler"]:
            print(f"{s.finding:16s} P={s.precision:.3f} R={s.recall:.3f} F1={s.f1:.3f}")
        print(f"macro F1 {macro_f1(result['labeler']):.3f} (keyword baseline {macro_f1(result['baseline']):.3f})")
    return 0
