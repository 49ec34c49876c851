"""``python -m train calibrate``: per-finding calibration and operating points from cross-validation.

Fitted on the out-of-fold predictions of ``python -m train cross-validate`` (train.evaluation.oof), never on
the images a model trained on:

- Platt scaling per finding: p = sigmoid(slope * logit + intercept), by maximum likelihood on every
  out-of-fold (image, finding) pair with a known label;
- the operating point per finding: the threshold that maximises sensitivity + specificity - 1
  (Youden) on the same predictions, stored with the sensitivity and specificity it had there;
- ECE before and after. "After" is cross-fitted: each fold's predictions are calibrated by a fit on
  the other folds only, so the figure is not flattered by fitting and scoring the same images.

``--model DIR`` writes the calibration (lrclr.model.calibration reads it) into that model's card, and the
cross-validation AUCs as evaluations the Model page shows (``metrics["cv_seen"]``, and with
``--held-out-cv`` the genuinely zero-shot figure ``metrics["cv_held_out"]``), with paired CIs
against ``--compare-cv``; ``--figure`` draws the reliability diagram.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from lrclr.model.calibration import CARD_KEY, Calibration, FindingCalibration, OperatingPoint, sigmoid
from lrclr.trust.reliability import HELD_OUT_EVALUATION, SEEN_EVALUATION
from train.evaluation.report import json_safe
from train.evaluation.metrics import roc_curve

ECE_BINS = 10
# A weak pull of the slope towards 1 and the intercept towards 0 keeps a finding with very few
# positives (Edema: 7 of 421) from a degenerate fit; it is negligible for the others.
PLATT_PRIOR = 1e-3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cv", type=Path, required=True, help="a cross-validate output folder (its oof.json)")
    parser.add_argument("--model", type=Path, default=None, help="model folder whose card receives the calibration")
    parser.add_argument("--name", default=None, help="this model's name in paired differences (default: its folder)")
    parser.add_argument("--compare-cv", type=Path, default=None, metavar="DIR",
                        help="another cross-validation (e.g. the baseline's) for paired AUC differences in the card")
    parser.add_argument("--compare-name", default="baseline", help="that run's model name")
    parser.add_argument("--held-out-cv", type=Path, default=None, metavar="DIR",
                        help="a cross-validation trained with held_out_findings: its AUCs on those findings go "
                             "into the card as the genuinely zero-shot figure")
    parser.add_argument("--figure", type=Path, default=None, help="reliability diagram PNG to write")
    parser.add_argument("--out-json", type=Path, default=None, help="the calibration figures as JSON")


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) maximising the likelihood of ``labels`` (0/1) under sigmoid(slope*z + b)."""
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)

    def loss(params):
        a, b = params
        t = a * z + b
        # mean BCE, written with logaddexp for stability, plus the weak prior
        value = np.mean(np.logaddexp(0.0, t) - y * t) + PLATT_PRIOR * ((a - 1) ** 2 + b**2)
        p = sigmoid(t)
        grad = np.array([np.mean((p - y) * z) + 2 * PLATT_PRIOR * (a - 1), np.mean(p - y) + 2 * PLATT_PRIOR * b])
        return value, grad

    # The slope may not go below 0: a calibration must never reverse the model's ranking. Where the
    # out-of-fold scores rank a finding backwards (AUC < 0.5), the fit gives a constant near the base
    # rate instead of turning the lowest similarities into the highest probabilities.
    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
    return float(result.x[0]), float(result.x[1])


def youden_point(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(threshold, sensitivity, specificity) maximising sensitivity + specificity - 1."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    finite = np.isfinite(thresholds)
    j = np.argmax(np.where(finite, tpr - fpr, -np.inf))
    return float(thresholds[j]), float(tpr[j]), float(1 - fpr[j])


def expected_calibration_error(labels: np.ndarray, logits: np.ndarray | None = None,
                               probabilities: np.ndarray | None = None, bins: int = ECE_BINS) -> float:
    """ECE over every (image, finding) pair with a known label, pooled: equal-width probability
    bins, |observed rate - mean probability| weighted by the bin's share of pairs."""
    labels = np.asarray(labels)
    p = sigmoid(logits) if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    known = np.isin(labels, (0, 1))
    y, p = labels[known].astype(np.float64), p[known]
    if y.size == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.sum() / y.size * abs(y[inside].mean() - p[inside].mean())
    return float(total)


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per bin: mean probability, observed rate and count (the reliability diagram's points)."""
    known = np.isin(labels, (0, 1))
    y, p = np.asarray(labels)[known].astype(float), np.asarray(probabilities, dtype=float)[known]
    index = np.minimum((p * bins).astype(int), bins - 1)
    return [{"bin": b, "mean_probability": float(p[index == b].mean()), "observed": float(y[index == b].mean()),
             "count": int((index == b).sum())} for b in range(bins) if (index == b).any()]


def fit_calibration(oof, fitted_on: str) -> Calibration:
    """Platt fit and Youden operating point per finding on all out-of-fold predictions."""
    findings = {}
    for j, finding in enumerate(oof.findings):
        known = np.isin(oof.labels[:, j], (0, 1))
        y, z = oof.labels[known, j], oof.logits[known, j]
        if y.min() == y.max():
            continue  # one class only: nothing to calibrate against
        slope, intercept = fit_platt(z, y)
        fit = FindingCalibration(slope, intercept)
        threshold, sensitivity, specificity = youden_point(fit.probability(z), y)
        findings[finding] = FindingCalibration(slope, intercept, OperatingPoint(threshold, sensitivity, specificity))
    return Calibration(findings, "platt", fitted_on)


def cross_fitted_probabilities(oof) -> np.ndarray:
    """Each fold's out-of-fold predictions calibrated by a Platt fit on the other folds alone."""
    out = sigmoid(oof.logits)
    for fold in np.unique(oof.folds):
        inside = oof.folds == fold
        for j in range(len(oof.findings)):
            known = np.isin(oof.labels[:, j], (0, 1)) & ~inside
            y = oof.labels[known, j]
            if y.size and y.min() != y.max():
                slope, intercept = fit_platt(oof.logits[known, j], y)
                out[inside, j] = sigmoid(slope * oof.logits[inside, j] + intercept)
    return out


def calibration_report(oof) -> dict:
    calibrated = cross_fitted_probabilities(oof)
    raw = sigmoid(oof.logits)
    per_finding = {}
    for j, finding in enumerate(oof.findings):
        per_finding[finding] = {"ece_raw": expected_calibration_error(oof.labels[:, [j]], probabilities=raw[:, [j]]),
                                "ece_calibrated": expected_calibration_error(oof.labels[:, [j]],
                                                                             probabilities=calibrated[:, [j]])}
    return {"ece_raw": expected_calibration_error(oof.labels, probabilities=raw),
            "ece_calibrated_cross_fitted": expected_calibration_error(oof.labels, probabilities=calibrated),
            "per_finding": per_finding,
            "reliability_raw": reliability(oof.labels, raw),
            "reliability_calibrated": reliability(oof.labels, calibrated)}


def reliability_figure(report: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5), dpi=120)
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfect calibration")
    for key, label, colour in (("reliability_raw", f"raw (ECE {report['ece_raw']:.3f})", "tab:red"),
                               ("reliability_calibrated",
                                f"calibrated, cross-fitted (ECE {report['ece_calibrated_cross_fitted']:.3f})",
                                "tab:blue")):
        points = report[key]
        axis.plot([p["mean_probability"] for p in points], [p["observed"] for p in points], "o-", color=colour,
                  label=label)
    axis.set_xlabel("predicted probability (bin mean)")
    axis.set_ylabel("observed frequency")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(title, fontsize=9)
    axis.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    from train.evaluation.oof import OutOfFold

    oof = OutOfFold.load(args.cv)
    fitted_on = (f"out-of-fold predictions of {oof.meta.get('folds', '?')}-fold patient-grouped cross-validation "
                 f"over {len(oof.image_ids)} images ({args.cv})")
    calibration = fit_calibration(oof, fitted_on)
    report = {"command": args.command_line, "cv": str(args.cv), "created": _now(),
              **calibration_report(oof), "calibration": calibration.to_dict()}
    if args.figure:
        reliability_figure(report, args.figure, f"{len(oof.image_ids)} images x {len(oof.findings)} findings, "
                                                f"out of fold")
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(json_safe(report), indent=2) + "\n", encoding="utf-8")
    if args.model:
        write_card(args, oof, calibration, report)
    print(f"ECE raw {report['ece_raw']:.3f}, calibrated (cross-fitted) {report['ece_calibrated_cross_fitted']:.3f}; "
          f"{len(calibration.findings)} findings calibrated" + (f" into {args.model}/model_card.json" if args.model else ""))
    return 0


def write_card(args: argparse.Namespace, oof, calibration: Calibration, report: dict) -> None:
    """Put the calibration and the cross-validation evaluations into ``args.model``'s card."""
    from lrclr.model.weights import read_folder, update_card
    from train.evaluation.oof import OutOfFold, paired

    config, _, card = read_folder(args.model)
    name = args.name or args.model.name
    pairs = {}
    if args.compare_cv is not None:
        differences = paired(oof, OutOfFold.load(args.compare_cv))
        pairs[f"{name} - {args.compare_name}"] = [dataclasses.asdict(d) for d in differences]
    metrics = dict(card.get("metrics") or {})
    folds, run = oof.meta.get("folds", "?"), oof.meta.get("folds_run")
    scope = f"{folds}-fold cross-validation" if not run or len(run) == folds else \
        f"folds {', '.join(map(str, run))} of a {folds}-fold cross-validation ({len(oof.image_ids)} images)"
    metrics[SEEN_EVALUATION] = cv_evaluation(oof, args.cv, name, card, config.use_regions, pairs, report,
                                             f"{scope} (findings learned from the composed reports' labels)")
    summary_path = Path(args.cv) / "summary.json"
    if summary_path.is_file():  # the map specificity the cross-validation measured on held-out folds
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        metrics[SEEN_EVALUATION]["map_specificity"] = summary.get("map_specificity")
        metrics[SEEN_EVALUATION]["map_phrases"] = summary.get("map_phrases")
    if args.held_out_cv is not None:
        zero_shot = OutOfFold.load(args.held_out_cv)
        findings = [f for f in zero_shot.findings if f in (zero_shot.meta.get("held_out_findings") or [])]
        if not findings:
            raise SystemExit(f"{args.held_out_cv} was not trained with held_out_findings")
        # The held-out run's own recipe, which may differ from this model's: the title says whose it is.
        held_out_regions = bool(((zero_shot.meta.get("config") or {}).get("model") or {}).get("use_regions", False))
        metrics[HELD_OUT_EVALUATION] = cv_evaluation(
            zero_shot, args.held_out_cv, name, card, held_out_regions, {}, None,
            "genuinely zero-shot: findings removed from all training texts and prompts, measured by the "
            f"{zero_shot.meta.get('folds', '?')}-fold cross-validation {Path(args.held_out_cv).name} "
            f"({'an LRCLR' if held_out_regions else 'a global-only'} recipe; its command is below)", findings)
    update_card(args.model, {CARD_KEY: calibration.to_dict(), "metrics": metrics})


def cv_evaluation(oof, cv: Path, name: str, card: dict, uses_regions: bool, pairs: dict, report: dict | None,
                  title: str, findings: list[str] | None = None) -> dict:
    """A cross-validation in the shape ``train evaluate --card-key`` stores, so the Model page's
    tables, ROC curves and paired differences read it like any evaluation."""
    from train.evaluation.model_evaluation import roc_curves
    from train.evaluation.oof import summarize

    chosen = findings or list(oof.findings)
    summary = summarize(oof, chosen)
    cols = [oof.findings.index(f) for f in chosen]
    result = {"model_id": card.get("model_id"), "uses_regions": uses_regions, "n_samples": len(oof.image_ids),
              "findings": [dataclasses.asdict(f) for f in summary.findings], "macro": dataclasses.asdict(summary.macro),
              "fold_macros": summary.fold_macros, "roc": roc_curves(chosen, oof.labels[:, cols], oof.logits[:, cols]),
              "retrieval": [], "localization": []}
    entry = {"name": name, "title": title, "command": oof.meta.get("command"),
             "dataset": {"spec": oof.meta.get("dataset"), "split": f"out of fold ({oof.meta.get('folds')} folds)",
                         "n_samples": len(oof.image_ids), "fold_rule": oof.meta.get("fold_rule"),
                         "extra_train": oof.meta.get("extra_train"), "held_out_findings": oof.meta.get("held_out_findings")},
             "result": result, "paired_differences": pairs, "source": str(cv)}
    if report is not None:
        entry["calibration"] = {k: report[k] for k in ("ece_raw", "ece_calibrated_cross_fitted")}
    return json_safe(entry)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
