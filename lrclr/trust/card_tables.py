"""The evaluations a model card stores, as the tables the Model page shows.

``train evaluate --card-key NAME`` writes each result into ``model_card.json`` under
``metrics[NAME]``. These functions read those results back (never recompute them) and line up the
loaded model with the bundled models that were evaluated on the same data. Card values may come
from a user's folder, so every number is checked before it is used and text stays text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from lrclr.model.lrclr_model import LRCLRModel


def training_data_summary(training_data, extra_training_data=None) -> str:
    """One line for the sidebar and the Model page: the dataset, its reports and sizes."""
    if isinstance(training_data, dict) and isinstance(training_data.get("spec"), dict):
        kind = training_data["spec"].get("kind", "?")
        reports = training_data["spec"].get("reports")
        train = training_data.get("split_sizes", {}).get("train")
        details = ", ".join(x for x in (f"{reports} reports" if reports else "", f"{train} training images" if train else "") if x)
        summary = f"{kind} dataset" + (f" ({details})" if details else "")
    else:
        summary = str(training_data or "")
    # Datasets that only trained (train/datasets/mixed.py), e.g. "phantom:extra-train": 340.
    sizes = extra_training_data.get("sizes") if isinstance(extra_training_data, dict) else None
    if isinstance(sizes, dict):
        extras = [f"{count} {name.split(':')[0]} images" for name, count in sizes.items()
                  if str(name).endswith(":extra-train")]
        summary += "".join(f" + {extra} (training only)" for extra in extras)
    return summary


def card_facts(model: "LRCLRModel") -> pd.DataFrame:
    """The card's headline facts and the towers from config.json, as (field, value) text rows."""
    card, config = model.model_card, model.config
    tower = lambda t: f"{t.kind} ({t.source or 'built in'})"
    kind = (f"LRCLR: top-{config.num_regions} region selection + {config.interaction_layers} interaction layer(s)"
            if config.use_regions else "global-only baseline (CLIP-style, no region selection)")
    seconds = card.get("training_seconds")
    facts = {
        "model id": card.get("model_id"), "kind": kind, "image tower": tower(config.image_tower),
        "text tower": tower(config.text_tower), "input size": f"{config.image_size} px, embedding {config.embed_dim}",
        "training data": training_data_summary(card.get("training_data"), card.get("extra_training_data")),
        "training steps": card.get("steps"),
        "training time": f"{seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else seconds,
        "trained on": card.get("hardware"), "saved": card.get("saved"), "code version": card.get("code_version"),
        "exported from": card.get("exported_from"), "seed": card.get("seed"),
        "running on": model.device_info.name,
    }
    return pd.DataFrame({"field": list(facts), "value": ["—" if v in (None, "") else str(v) for v in facts.values()]})


def read_cards(folder: Path) -> list[dict]:
    """The model cards of the model folders under ``folder`` (the bundled models), sorted by folder."""
    cards = []
    for path in sorted(Path(folder).glob("*/model_card.json")):
        try:
            cards.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a broken card only loses its comparison column
    return cards


def model_label(card: dict, result: dict) -> str:
    return f"{card.get('model_id', '?')} ({'LRCLR' if result.get('uses_regions') else 'baseline'})"


def same_evaluation(card: dict, other: dict, name: str) -> dict | None:
    """``other``'s entry for evaluation ``name`` if it scored the same data as ``card``'s, else None."""
    entry, match = (card.get("metrics") or {}).get(name), (other.get("metrics") or {}).get(name)
    if other != card and isinstance(entry, dict) and isinstance(match, dict) \
            and match.get("dataset") == entry.get("dataset") and isinstance(match.get("result"), dict):
        return match
    return None


def evaluations(card: dict, others: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    """Per evaluation in the card: (label, result) for the loaded model, then for every other
    bundled model evaluated on the same dataset with the same command's data."""
    found = {}
    for name, entry in (card.get("metrics") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
            continue
        entries = [(model_label(card, entry["result"]), entry["result"])]
        for other in others:
            if (match := same_evaluation(card, other, name)) is not None:
                entries.append((model_label(other, match["result"]), match["result"]))
        found[name] = entries
    return found


def paired_intervals(card: dict, other: dict, name: str) -> dict[str, tuple[float, float]]:
    """Finding ("Macro mean" for the macro) -> 95% CI of AUC(card's model) - AUC(other's), from the
    paired bootstrap ``train evaluate`` stored under the models' evaluation names; {} if absent.

    The stored difference is the evaluation's first model minus the other, so loading the second
    model flips it: the interval of B - A is minus that of A - B, ends swapped."""
    entry, match = (card.get("metrics") or {}).get(name) or {}, same_evaluation(card, other, name) or {}
    own, theirs = entry.get("name"), match.get("name")
    pairs = entry.get("paired_differences") or {}
    # Keys as train.evaluation.model_evaluation.pair_name writes them: "first - other".
    for key, sign in ((f"{own} - {theirs}", 1), (f"{theirs} - {own}", -1)):
        if own is None or theirs is None or not isinstance(pairs.get(key), list):
            continue
        intervals = {}
        for row in pairs[key]:
            low, high = finite_number(row.get("ci_low")), finite_number(row.get("ci_high"))
            if low is not None and high is not None:
                finding = "Macro mean" if row.get("finding") == "macro" else str(row.get("finding"))
                intervals[finding] = (low, high) if sign > 0 else (-high, -low)
        return intervals
    return {}


def finite_number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def macro_summaries(found: dict[str, list[tuple[str, dict]]]) -> list[str]:
    """One line per evaluation from ``evaluations``: each model's macro AUC with its 95% CI.
    Evaluations with the same numbers (the same data scored again with another pointing-game
    tolerance) share one line."""
    names_by_summary: dict[str, list[str]] = {}
    for name, entries in found.items():
        parts = []
        for label, result in entries:
            macro = result.get("macro") or {}
            auc, low, high = (finite_number(macro.get(k)) for k in ("auc", "ci_low", "ci_high"))
            if auc is not None:
                interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
                parts.append(f"{label} {auc:.3f}{interval}")
        if parts:
            names_by_summary.setdefault("; ".join(parts), []).append(name)
    return [f"Macro AUC, {', '.join(names)}: {summary} (0.5 = chance)." for summary, names in names_by_summary.items()]


def auc_frame(entries: list[tuple[str, dict]], paired: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """One row per finding (then the macro mean): positives, negatives, AUC and 95% CI per model,
    and with two models their difference (with its paired CI when the card holds one)."""
    rows: dict[str, dict] = {}
    for label, result in entries:
        items = [*(result.get("findings") or []), {"finding": "Macro mean", **(result.get("macro") or {})}]
        for item in items:
            row = rows.setdefault(str(item.get("finding")), {"finding": str(item.get("finding")),
                                                              "positives": item.get("n_positive"),
                                                              "negatives": item.get("n_negative")})
            low, high = finite_number(item.get("ci_low")), finite_number(item.get("ci_high"))
            row[f"AUC · {label}"] = finite_number(item.get("auc"))
            row[f"95% CI · {label}"] = "—" if low is None or high is None else f"{low:.3f} – {high:.3f}"
    frame = pd.DataFrame(list(rows.values()))
    frame[["positives", "negatives"]] = frame[["positives", "negatives"]].astype("Int64")
    if len(entries) >= 2:
        first, second = (f"AUC · {label}" for label, _ in entries[:2])
        frame[f"AUC difference ({entries[0][0]} − {entries[1][0]})"] = frame[first] - frame[second]
        if paired:
            frame["95% CI of the difference (paired)"] = [
                f"{paired[f][0]:.3f} – {paired[f][1]:.3f}" if f in paired else "—" for f in frame["finding"]]
    return frame


def side_table(entries: list[tuple[str, dict]], key: str, columns: tuple[str, ...], value) -> pd.DataFrame:
    """Retrieval or localization rows keyed by ``columns``, one value column per model."""
    rows: dict[tuple, dict] = {}
    for label, result in entries:
        for item in result.get(key) or []:
            for sub_key, number in value(item):
                ident = (*(item.get(c) for c in columns), sub_key)
                row = rows.setdefault(ident, {c: item.get(c) for c in columns} | ({"k": sub_key} if sub_key else {}))
                row[label] = finite_number(number)
    return pd.DataFrame(list(rows.values()))


def evaluation_title(card: dict, name: str) -> str:
    """A tab title: the evaluation's own title when the card gives one (cross-validation says what
    kind of figure it is: learned from labels, or genuinely zero-shot), else its key."""
    entry = (card.get("metrics") or {}).get(name) or {}
    title = entry.get("title") if isinstance(entry, dict) else None
    return f"{name}: {title}" if isinstance(title, str) and title else name


def limits_lines(card: dict) -> list[str]:
    """What the card says about how far to trust the model, in sentences (numbers from the card)."""
    from lrclr.trust.reliability import evidence_summary

    summary = evidence_summary(card)
    seconds = finite_number(card.get("training_seconds"))
    lines = [f"Trained in {seconds / 60:.0f} minutes on {card.get('hardware', 'unknown hardware')}, on "
             f"{training_data_summary(card.get('training_data'), card.get('extra_training_data'))}."
             if seconds is not None else "Training time and hardware are not recorded in this card."]
    if summary is None:
        lines.append("Its card holds no cross-validated figures: its scores are raw zero-shot similarities, "
                     "uncalibrated, and no finding has been validated.")
        return lines
    if summary.macro_auc is not None and summary.macro_ci is not None:
        lines.append(f"Findings learned from the reports' labels ({summary.description}): macro AUC "
                     f"{summary.macro_auc:.3f} [{summary.macro_ci[0]:.3f}, {summary.macro_ci[1]:.3f}]. These are "
                     "not zero-shot figures: the training reports stated these findings.")
    if summary.held_out_findings and summary.held_out_macro is not None and summary.held_out_ci is not None:
        lines.append(f"Genuinely zero-shot (findings removed from all training texts and prompts: "
                     f"{', '.join(summary.held_out_findings)}): macro AUC {summary.held_out_macro:.3f} "
                     f"[{summary.held_out_ci[0]:.3f}, {summary.held_out_ci[1]:.3f}].")
    calibration = card.get("calibration") or {}
    if calibration.get("findings"):
        lines.append(f"Probabilities are calibrated per finding (Platt scaling fitted on {calibration.get('fitted_on')}); "
                     "each finding has its own operating point.")
    lines.append("Heat maps show where the model attends, not where disease is.")
    return lines
