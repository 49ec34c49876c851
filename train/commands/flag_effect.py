"""``python -m train flag-effect``: did learning from flags change what it should, and only that?

Two models (before and after fine-tuning with flags) and one flag store. For every usable flagged
(word, grid cell) pair, the word's attention on that cell is measured as the app shows it (see
``train.training.flag_loss``), before and after. A cell the selector no longer picks gets 0, so the report
splits the drop honestly in two: pairs whose cell was de-selected, and pairs still attended but less.
Then the held-out zero-shot macro AUC of both models (``train.evaluation.model_evaluation``), on the whole split and on
the split without the flagged images (fine-tuning saw those images, if not their labels).

Outputs a JSON record and a markdown page, each with the exact command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrclr.annotations.records import sha256_hex
from lrclr.errors import LRCLRError
from train.evaluation.report import json_safe, write_result_files
from train.training.flag_loss import FlagFeatures, PairAttention, pair_attention
from train.datasets.flags import FlagPairs, load_flag_pairs, model_grid

TARGET_DROP = 0.5  # issue #6: bad-pair attention falls by at least half
TARGET_AUC_CHANGE = 0.01  # ... while held-out macro AUC moves by at most this
CASES_PER_CHUNK = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", type=Path, required=True, metavar="MODEL", help="model folder before fine-tuning")
    parser.add_argument("--after", type=Path, required=True, metavar="MODEL", help="model folder after fine-tuning")
    parser.add_argument("--flags", type=Path, required=True, metavar="DB", help="flag store (SQLite)")
    parser.add_argument("--flag-images", type=Path, action="append", default=None, metavar="DIR",
                        help="folders holding the flagged images and .txt reports (default: assets/demo "
                             "and the dataset's images)")
    parser.add_argument("--flags-any-model", action="store_true",
                        help="also measure flags made on other models than --before")
    parser.add_argument("--dataset", required=True,
                        help="held-out dataset spec for the AUC (a JSON file or inline JSON); its images and "
                             "reports are also searched for the flagged cases")
    parser.add_argument("--split", default="test", help="split of the patient-disjoint split (default test)")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar="F")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--findings", nargs="+", help="finding names (default: those labelled in the data)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the AUC CIs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    parser.add_argument("--out-json", type=Path, help="write the JSON record here")
    parser.add_argument("--out-md", type=Path, help="write the markdown page here (printed either way)")


@torch.inference_mode()
def measure(model, pairs: FlagPairs) -> PairAttention:
    """Every pair's attention mass on its cell, a chunk of cases at a time."""
    model.eval()
    features = FlagFeatures(model, pairs, model.device_info.device)
    by_case: dict[int, list[int]] = {}
    for i, target in enumerate(pairs.targets):
        by_case.setdefault(target.case, []).append(i)
    cases = sorted(by_case)
    parts, order = [], []
    for start in range(0, len(cases), CASES_PER_CHUNK):
        indices = [i for c in cases[start : start + CASES_PER_CHUNK] for i in by_case[c]]
        parts.append(pair_attention(model, pairs, indices, features))
        order += indices
    position = torch.argsort(torch.tensor(order))
    return PairAttention(*(torch.cat([getattr(p, name).cpu() for p in parts])[position]
                           for name in ("mass", "selected", "sign")))


def attention_summary(before: PairAttention, after: PairAttention, sign: int) -> dict[str, Any]:
    """Means before/after for one verdict kind, and how much of the change is de-selection."""
    chosen = (before.sign == sign).numpy()
    b, a = before.mass.float().numpy()[chosen], after.mass.float().numpy()[chosen]
    sel_b, sel_a = before.selected.numpy()[chosen], after.selected.numpy()[chosen]
    if not chosen.any():
        return {"n": 0}
    deselected = sel_b & ~sel_a
    kept = sel_b & sel_a
    change = float(b.sum() - a.sum())
    return {
        "n": int(chosen.sum()),
        "mean_before": float(b.mean()), "mean_after": float(a.mean()),
        "relative_change": float(a.mean() / b.mean() - 1) if b.mean() > 0 else None,
        "selected_before": float(sel_b.mean()), "selected_after": float(sel_a.mean()),
        "no_longer_selected": float(deselected.mean()),
        "still_selected": {"n": int(kept.sum()),
                           "mean_before": float(b[kept].mean()) if kept.any() else None,
                           "mean_after": float(a[kept].mean()) if kept.any() else None},
        # Of the total change in attention mass, the part from cells that left the selection.
        "share_of_change_from_deselection": float(b[deselected].sum() / change) if change else None,
    }


def _auc(model, samples, findings, bootstrap: int) -> dict[str, Any]:
    from train.evaluation.model_evaluation import evaluate_model

    result = evaluate_model(model, samples, findings, bootstrap=bootstrap)
    macro = result.macro
    return {"n_samples": result.n_samples, "macro_auc": macro.auc, "ci": [macro.ci_low, macro.ci_high],
            "findings_averaged": len(macro.findings)}


def _without_flagged(samples, pairs: FlagPairs):
    """The split minus the flagged images, matched by SHA-256 where the dataset keeps image files."""
    from train.datasets.flags import dataset_image_roots
    from train.datasets.splits import Subset

    ids = samples.dataset.image_ids() if hasattr(samples.dataset, "image_ids") else None
    roots = dataset_image_roots(samples.dataset)
    if ids is None or not roots:
        return None
    flagged = {case.image_sha256 for case in pairs.selection.cases}

    def is_flagged(index: int) -> bool:
        path = next((root / ids[index] for root in roots if (root / ids[index]).is_file()), None)
        return path is not None and sha256_hex(path.read_bytes()) in flagged

    keep = [i for i in samples.indices if not is_flagged(i)]
    return Subset(samples.dataset, keep, transform=None) if len(keep) < len(samples.indices) else None


def auc_comparison(before_model, after_model, samples, findings, pairs: FlagPairs, bootstrap: int) -> dict[str, Any]:
    views = {"split": samples}
    reduced = _without_flagged(samples, pairs)
    if reduced is not None:
        views["split_without_flagged_images"] = reduced
    out = {}
    for name, view in views.items():
        b, a = _auc(before_model, view, findings, bootstrap), _auc(after_model, view, findings, bootstrap)
        out[name] = {"before": b, "after": a, "difference": a["macro_auc"] - b["macro_auc"]}
    return out


def run(args: argparse.Namespace) -> int:
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.findings import parse_finding_list
    from train.datasets.factory import dataset_samples, labelled_findings, read_dataset_spec

    started = time.perf_counter()
    try:
        spec = read_dataset_spec(args.dataset)
        samples = dataset_samples(spec, args.split, args.split_fractions, args.split_seed, None)
        before = LRCLRModel.from_pretrained(args.before, device=args.device)
        after = LRCLRModel.from_pretrained(args.after, device=args.device)
        _check_comparable(before, after)
        pairs = load_flag_pairs(args.flags, before, image_roots=args.flag_images or (), dataset=samples.dataset,
                                model_id=before.model_id, any_model=args.flags_any_model)
    except (LRCLRError, OSError, ValueError) as error:
        print(f"flag-effect: {error}")
        return 2
    print(pairs.selection.summary())
    if len(pairs) == 0:
        print("flag-effect: no usable flagged pairs to measure")
        return 2
    attention_before, attention_after = measure(before, pairs), measure(after, pairs)
    findings = parse_finding_list(",".join(args.findings)) if args.findings else labelled_findings(samples)
    record = {
        "command": getattr(args, "command_line", None) or "python -m train " + shlex.join(sys.argv[1:]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "before": str(args.before), "after": str(args.after), "flags": str(args.flags),
        "flag_selection": {"verdicts": pairs.selection.n_verdicts, "pairs": len(pairs),
                           "cases": len(pairs.selection.cases), "skipped": dict(pairs.selection.skipped)},
        "bad": attention_summary(attention_before, attention_after, 1),
        "good": attention_summary(attention_before, attention_after, -1),
        "auc": auc_comparison(before, after, samples, findings, pairs, args.bootstrap),
        "dataset": {"spec": spec, "split": args.split, "split_fractions": args.split_fractions,
                    "split_seed": args.split_seed, "findings": list(findings)},
        "pairs": _pair_rows(pairs, attention_before, attention_after),
    }
    record["targets"] = _targets(record)
    record["seconds"] = round(time.perf_counter() - started, 1)
    markdown = to_markdown(record)
    write_result_files(json.dumps(json_safe(record), indent=2) + "\n", args.out_json, markdown, args.out_md)
    print(markdown)
    return 0


def _check_comparable(before, after) -> None:
    if before.config.image_size != after.config.image_size or model_grid(before) != model_grid(after):
        raise ValueError("--before and --after differ in input size or patch grid; their cells are not comparable")
    towers = [(t.kind, t.source, t.options) for t in (before.config.text_tower, after.config.text_tower)]
    if towers[0] != towers[1]:
        raise ValueError("--before and --after use different text towers; their wordpieces are not comparable")


def _pair_rows(pairs: FlagPairs, before: PairAttention, after: PairAttention) -> list[dict[str, Any]]:
    rows = []
    for i, target in enumerate(pairs.targets):
        rows.append({"case_id": pairs.selection.cases[target.case].case_id, "word": target.word,
                     "char_span": [target.char_start, target.char_end], "cell": list(target.cell),
                     "verdict": "bad match" if target.sign > 0 else "good match",
                     "before": float(before.mass[i]), "after": float(after.mass[i]),
                     "selected_before": bool(before.selected[i]), "selected_after": bool(after.selected[i])})
    return rows


def _targets(record: dict[str, Any]) -> dict[str, Any]:
    change = record["bad"].get("relative_change")
    auc = record["auc"]["split"]["difference"]
    return {"bad_attention_drop": {"target": f">= {TARGET_DROP:.0%}", "value": None if change is None else -change,
                                   "met": change is not None and -change >= TARGET_DROP},
            "macro_auc_change": {"target": f"|change| <= {TARGET_AUC_CHANGE}", "value": auc,
                                 "met": bool(np.isfinite(auc) and abs(auc) <= TARGET_AUC_CHANGE)}}


def _fmt(value, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def to_markdown(record: dict[str, Any]) -> str:
    selection = record["flag_selection"]
    lines = ["# Learning from flags: effect", "", "Command:", "", "```", record["command"], "```", "",
             f"Created {record['created']}. Before: `{record['before']}`; after: `{record['after']}`; flags: "
             f"{selection['pairs']} pairs on {selection['cases']} cases ({selection['verdicts']} verdicts read, "
             f"{sum(selection['skipped'].values())} skipped).", "",
             "| pairs | n | mean attention before | after | relative change | cell no longer selected "
             "| still selected: n, before -> after | share of change from de-selection |",
             "|---|---:|---:|---:|---:|---:|---|---:|"]
    for kind in ("bad", "good"):
        s = record[kind]
        if not s.get("n"):
            lines.append(f"| {kind} match | 0 | | | | | | |")
            continue
        kept = s["still_selected"]
        lines.append(f"| {kind} match | {s['n']} | {_fmt(s['mean_before'])} | {_fmt(s['mean_after'])} "
                     f"| {_fmt(None if s['relative_change'] is None else 100 * s['relative_change'], 1)}% "
                     f"| {100 * s['no_longer_selected']:.1f}% | {kept['n']}: {_fmt(kept['mean_before'])} -> "
                     f"{_fmt(kept['mean_after'])} | {_fmt(s['share_of_change_from_deselection'], 2)} |")
    lines += ["", "| held-out zero-shot macro AUC | samples | before [95% CI] | after [95% CI] | difference |",
              "|---|---:|---|---|---:|"]
    for name, values in record["auc"].items():
        b, a = values["before"], values["after"]
        lines.append(f"| {name.replace('_', ' ')} ({record['dataset']['split']}) | {b['n_samples']} "
                     f"| {_fmt(b['macro_auc'], 3)} [{_fmt(b['ci'][0], 3)}, {_fmt(b['ci'][1], 3)}] "
                     f"| {_fmt(a['macro_auc'], 3)} [{_fmt(a['ci'][0], 3)}, {_fmt(a['ci'][1], 3)}] "
                     f"| {values['difference']:+.4f} |")
    lines += ["", "| target | value | met |", "|---|---:|---|"]
    for name, target in record["targets"].items():
        lines.append(f"| {name.replace('_', ' ')} {target['target']} | {_fmt(target['value'])} "
                     f"| {'met' if target['met'] else 'MISSED'} |")
    return "\n".join(lines) + "\n"
