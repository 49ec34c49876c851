"""The summary of a cross-validation: what ``summary.json`` and ``summary.md`` say.

Macro and per-finding AUC with bootstrap CIs (seen and held-out findings apart), ECE of the raw
scores, map specificity, paired differences against other runs, test-time views against the plain
scores, and what the run cost, including folds a rerun read back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lrclr.trust.map_checks import REFERENCE_PHRASES
from train.commands.calibrate import expected_calibration_error
from train.evaluation.oof import OutOfFold, paired, summarize


def versus_plain(with_views: OutOfFold, plain: OutOfFold) -> dict:
    """AUCs and ECE with test-time views, and their paired differences against the plain scores."""
    summary = summarize(with_views)
    differences = paired(with_views, plain)
    macro = next(d for d in differences if d.finding == "macro")
    return {"macro_auc": summary.macro.auc, "all_findings": summary.to_dict(),
            "ece_raw": expected_calibration_error(with_views.labels, with_views.logits),
            "paired_vs_plain": dataclasses.asdict(macro),
            "paired_vs_plain_by_finding": [dataclasses.asdict(d) for d in differences]}


def wall_time(this_invocation: float, read_back: list[dict]) -> dict:
    """What the run cost: this invocation plus the recorded wall time of every fold it read back
    (folds from before fold wall times were recorded are named as not counted)."""
    recorded = [r["wall_seconds"] for r in read_back if "wall_seconds" in r]
    return {"seconds": round(this_invocation + sum(recorded), 1),
            "folds_read_back": [r["fold"] for r in read_back],
            "folds_not_counted": [r["fold"] for r in read_back if "wall_seconds" not in r]}


def build_summary(oof: OutOfFold, held_out_findings, command: str, folds: int, compare: list,
                  fold_records: list[dict], wall: dict) -> dict:
    held_out = [f for f in oof.findings if f in held_out_findings]
    seen = [f for f in oof.findings if f not in held_out]
    summary = summarize(oof)
    result = {"command": command, "n_images": len(oof.image_ids), "folds": folds,
              "folds_run": sorted({int(f) for f in oof.folds}),
              "all_findings": summary.to_dict(),
              "seen_findings_macro": dataclasses.asdict(summarize(oof, seen).macro) if held_out else None,
              "held_out_findings_macro": dataclasses.asdict(summarize(oof, held_out).macro) if held_out else None,
              "held_out_findings": held_out,
              "ece_raw": expected_calibration_error(oof.labels, oof.logits),
              "map_specificity": _mean_map_specificity(fold_records),
              "map_phrases": list(REFERENCE_PHRASES),
              "training_seconds": [r["training_seconds"] for r in fold_records],
              "wall_seconds": wall["seconds"], "folds_read_back": wall["folds_read_back"],
              "folds_without_wall_time": wall["folds_not_counted"], "paired": {}}
    for other in compare:
        differences = paired(oof, OutOfFold.load(other))
        result["paired"][str(other)] = [dataclasses.asdict(d) for d in differences]
    return result


def _mean_map_specificity(records: list[dict]) -> dict[str, float]:
    kinds = {k for r in records for k in r.get("map_specificity", {})}
    return {k: float(np.mean([r["map_specificity"][k] for r in records if k in r.get("map_specificity", {})]))
            for k in sorted(kinds)}


def _read_back_note(summary: dict) -> str:
    read_back, missing = summary.get("folds_read_back", []), summary.get("folds_without_wall_time", [])
    if not read_back:
        return ""
    note = f" (folds {read_back} read back with their recorded wall time"
    return note + (f"; folds {missing} recorded none and are not counted)" if missing else ")")


def summary_markdown(summary: dict) -> str:
    def ci(item) -> str:
        return f"{item['auc']:.3f} [{item['ci_low']:.3f}, {item['ci_high']:.3f}]" if item.get("auc") is not None else "n/a"

    data = summary["all_findings"]
    lines = ["# Cross-validation", "", "```", summary["command"], "```", "",
             f"{summary['n_images']} images, {summary['folds']} patient-grouped folds; out-of-fold AUC with "
             "bootstrap 95% CIs (1000 resamples of images).", "",
             *([f"**Partial run**: only folds {summary['folds_run']} of {summary['folds']} were run; the figures "
                "cover their test images only.", ""] if len(summary.get("folds_run", [])) < summary["folds"] else []),
             f"- macro AUC ({len(data['macro']['findings'])} findings): **{ci(data['macro'])}**"]
    if summary["held_out_findings"]:
        lines.append(f"- seen findings macro: {ci(summary['seen_findings_macro'])}")
        lines.append(f"- held-out findings ({', '.join(summary['held_out_findings'])}, genuinely zero-shot) macro: "
                     f"{ci(summary['held_out_findings_macro'])}")
    folds = ", ".join(f"{v:.3f}" for v in data["fold_macros"].values() if v is not None)
    lines += [f"- macro inside each test fold: {folds}",
              f"- ECE of the raw scores: {summary['ece_raw']:.3f}",
              f"- map specificity (mean pairwise correlation, lower is more specific): {summary['map_specificity']}",
              f"- training seconds per fold: {summary['training_seconds']}; wall {summary['wall_seconds']:.0f} s"
              f"{_read_back_note(summary)}", "",
              "| finding | AUC [95% CI] | positives |", "|---|---|---:|"]
    lines += [f"| {f['finding']} | {ci(f)} | {f['n_positive']} |" for f in data["findings"]]
    for other, differences in summary["paired"].items():
        macro = next(d for d in differences if d["finding"] == "macro")
        lines += ["", f"Paired difference against `{other}`: macro {macro['difference']:+.3f} "
                      f"[{macro['ci_low']:+.3f}, {macro['ci_high']:+.3f}]", "",
                  "| finding | difference [95% paired CI] |", "|---|---|"]
        lines += [f"| {d['finding']} | {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] |"
                  for d in differences if d["finding"] != "macro"]
    if summary.get("macro_at_other_local_weights"):
        lines += ["", f"Macro AUC at other zero-shot local weights (same fold models): "
                      f"{summary['macro_at_other_local_weights']}"]
    for name, result in summary.get("test_time_views", {}).items():
        d = result["paired_vs_plain"]
        lines += ["", f"Averaged over {name.removeprefix('test-time-views-')} test-time views (`{name}/`): macro "
                      f"{ci(result['all_findings']['macro'])}, against the plain scores {d['difference']:+.3f} "
                      f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (paired); ECE of the raw scores "
                      f"{result['ece_raw']:.3f}", "",
                  "| finding | AUC with the views [95% CI] | against the plain scores [95% paired CI] |", "|---|---|---|"]
        by_finding = {f["finding"]: f for f in result["all_findings"]["findings"]}
        lines += [f"| {d['finding']} | {ci(by_finding[d['finding']])} | {d['difference']:+.3f} "
                  f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] |"
                  for d in result["paired_vs_plain_by_finding"] if d["finding"] != "macro"]
    return "\n".join(lines)
