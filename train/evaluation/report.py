"""The evaluation's outputs: models side by side as a markdown page and a strict-JSON record."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from train.evaluation.model_evaluation import EvaluationResult
    from train.evaluation.metrics import AUCDifference, FindingAUC


def json_safe(value):
    """NaN and infinities become null, numpy scalars plain numbers: strict JSON that any reader accepts."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


@dataclass(frozen=True)
class Comparison:
    markdown: str
    data: dict[str, Any]  # strict-JSON-serialisable


def compare(results: dict[str, EvaluationResult], *, command: str = "", dataset: Any = None,
            differences: dict[str, list[AUCDifference]] | None = None) -> Comparison:
    """Markdown tables (AUC with CI, paired AUC differences, macro, recall@k, pointing game / IoU) and
    the JSON record."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    differences = differences or {}
    data = json_safe({"command": command, "created": created, "dataset": dataset,
                       "models": {name: result.to_dict() for name, result in results.items()},
                       "paired_differences": {pair: [dataclasses.asdict(d) for d in items]
                                              for pair, items in differences.items()}})
    names = list(results)
    first = next(iter(results.values()), None)
    lines = ["# Evaluation", "", "Command:", "", "```", command or "(not recorded)", "```", "",
             f"Created {created}. Samples: {first.n_samples if first else 0}; "
             f"bootstrap resamples: {first.settings.get('bootstrap') if first else '-'} (95% percentile CIs).", ""]
    lines += ["| Model | id | kind | samples | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {_cell(n)} | {_cell(r.model_id)} | {'LRCLR' if r.uses_regions else 'global-only baseline'} "
              f"| {r.n_samples} | {r.seconds:.1f} |" for n, r in results.items()]
    lines += ["", *_auc_table(results, names), ""]
    if differences:
        lines += [*_difference_table(differences), ""]
    lines += [*_retrieval_table(results, names), "",
              *_localization_table(results, names)]
    return Comparison("\n".join(lines) + "\n", data)


def _cell(text: Any) -> str:
    # Names come from users and datasets: keep them from breaking the table.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _table(title: str, columns: list[str], names: list[str], rows: list[list[str]], empty: str) -> list[str]:
    head = columns + [_cell(n) for n in names]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + (["| " + " | ".join(row) + " |" for row in rows] or ["| " + empty + " |" * len(head)])


def _auc_table(results: dict[str, EvaluationResult], names: list[str]) -> list[str]:
    by_finding: dict[str, dict[str, FindingAUC]] = {}
    for name, result in results.items():
        for item in result.findings:
            by_finding.setdefault(item.finding, {})[name] = item
    rows = []
    for finding, items in by_finding.items():
        any_item = next(iter(items.values()))
        cells = ["—" if (i := items.get(n)) is None else "— (one class)" if not math.isfinite(i.auc)
                 else f"{_num(i.auc)} [{_num(i.ci_low)}, {_num(i.ci_high)}]" for n in names]
        rows.append([_cell(finding), f"{any_item.n_positive} / {any_item.n_negative}", *cells])
    # Resamples that drop a finding's only positives are skipped; say how many were left.
    rows.append(["**Macro mean**", "", *(f"**{_num(r.macro.auc)}** [{_num(r.macro.ci_low)}, {_num(r.macro.ci_high)}]"
                                          f" over {len(r.macro.findings)} findings, {r.macro.n_resamples} resamples"
                                          for r in results.values())])
    return _table("Zero-shot AUC (95% CI)", ["Finding", "pos / neg"], names, rows, "")


def _difference_table(differences: dict[str, list[AUCDifference]]) -> list[str]:
    pairs = list(differences)
    by_finding: dict[str, dict[str, AUCDifference]] = {}
    for pair, items in differences.items():
        for item in items:
            by_finding.setdefault(item.finding, {})[pair] = item
    rows = [["**Macro mean**" if finding == "macro" else _cell(finding),
             *("—" if (d := items.get(p)) is None or not math.isfinite(d.difference)
               else f"{d.difference:+.3f} [{_num(d.ci_low)}, {_num(d.ci_high)}]" for p in pairs)]
            for finding, items in by_finding.items()]
    title = "Paired AUC differences (95% CI; the same bootstrap resamples for both models)"
    return _table(title, ["Finding"], pairs, rows, "")


def _retrieval_table(results: dict[str, EvaluationResult], names: list[str]) -> list[str]:
    recall = {(name, r.direction, k): v for name, res in results.items() for r in res.retrieval
              for k, v in r.recall.items()}
    keys = dict.fromkeys((r.direction, k, r.n) for res in results.values() for r in res.retrieval for k in r.recall)
    rows = [[d, str(k), str(n), *(_num(recall.get((name, d, k))) for name in names)] for d, k, n in keys]
    return _table("Retrieval (recall@k)", ["Direction", "k", "n"], names, rows, "(no samples with reports)")


def _localization_table(results: dict[str, EvaluationResult], names: list[str]) -> list[str]:
    scores = {(name, s.finding, s.map_kind): s for name, res in results.items() for s in res.localization}
    keys = dict.fromkeys((s.finding, s.map_kind, s.n) for res in results.values() for s in res.localization)
    # The ceiling depends on the masks and the grid, not on the map: the same for every model here.
    ceilings = {(s.finding, s.map_kind): s.pointing_game_ceiling for res in results.values() for s in res.localization}
    chances = {(s.finding, s.map_kind): s.pointing_game_chance for res in results.values() for s in res.localization}
    rows = [[_cell(f), kind, str(n), _num(ceilings[(f, kind)], 2), _num(chances[(f, kind)], 2),
             *("—" if (s := scores.get((name, f, kind))) is None
               else f"{_num(s.pointing_game, 2)} / {_num(s.mean_iou)}" for name in names)]
            for f, kind, n in keys]
    return _table("Localization (pointing game / IoU of top regions; ceiling: the pointing game a perfect map "
                  "would score on the model's grid; chance: a map peaking at a random content cell)",
                  ["Finding", "map", "n", "ceiling", "chance"], names, rows,
                  "(no masks or boxes)")


def write_outputs(comparison: Comparison, out_json: Path | None, out_md: Path | None) -> None:
    write_result_files(json.dumps(comparison.data, indent=2, allow_nan=False) + "\n", out_json,
                       comparison.markdown, out_md)


def write_result_files(json_text: str, out_json: Path | None, markdown: str, out_md: Path | None) -> None:
    """Write whichever outputs were asked for. Their folders are created: a missing folder must not
    throw away an evaluation that took minutes."""
    for path, text in ((out_json, json_text), (out_md, markdown)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


# ---- the command ---------------------------------------------------------------------------------
