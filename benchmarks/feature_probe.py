"""The anchor every zero-shot AUC is read against: a supervised linear probe on the frozen tower.

    python -m benchmarks.feature_probe --out-oof runs/cv/probe --out-json feature_probe.json

Per finding, an L2-regularised logistic regression on the starting image tower's frozen, pooled
grid features (standardised), scored out of fold under exactly the folds ``python -m train
cross-validate`` uses (``train.datasets.splits.patient_folds`` with the same seed), so every image is scored
once by a probe that never saw its patient and the two runs pair image by image
(``cross-validate --compare runs/cv/probe``). The default setup is the one issue #15 measured on
outside patients: 224 px, the grid's mean plus its 3x3 average-pooled cells, penalty 1000
(sklearn's C = 0.001). A model trained on the same labels (the composed reports state them) that
scores below this has a recipe problem, not a data problem.

``--penalties`` sweeps other strengths; choosing the best of several after the fact flatters the
probe, so the out-of-fold file always holds the ``--penalty`` one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import emit, git_commit
from lrclr.model.towers import EfficientNetLiteTower
from lrclr.reports.labeler import NIH_FINDINGS
from lrclr.model.letterbox import prepare_images
from train.evaluation.metrics import roc_auc
from train.datasets.splits import patient_folds

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-cxr14-sample"
PENALTY = 1000.0  # total L2 strength on standardised features (sklearn's 1/C)
FOLDS = 5
# name -> how a (B, C, rows, cols) grid becomes a feature row
POOLINGS = {
    "mean": lambda g: [g.mean((2, 3))],
    "mean+max": lambda g: [g.mean((2, 3)), g.amax((2, 3))],
    "mean+grid3": lambda g: [g.mean((2, 3)), torch.nn.functional.adaptive_avg_pool2d(g, 3).flatten(1)],
    "mean+grid2": lambda g: [g.mean((2, 3)), torch.nn.functional.adaptive_avg_pool2d(g, 2).flatten(1)],
}


def pooled_features(samples, image_size: int, pooling: str = "mean+grid3", batch: int = 16) -> np.ndarray:
    """(N, features): the EfficientNet-Lite0 (ImageNet) grid of each letterboxed image, pooled."""
    tower = EfficientNetLiteTower(image_size, pretrained=True).eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            pixels, _ = prepare_images(samples[start : start + batch], image_size)
            rows.append(torch.cat(POOLINGS[pooling](tower(pixels)), 1))
    return torch.cat(rows).numpy().astype(np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Weights and bias minimising mean log-loss + penalty/2/N * |w|^2 (L-BFGS, float64)."""
    features, targets = torch.from_numpy(x), torch.from_numpy(y.astype(np.float64))
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(features @ weights + bias, targets)
        loss = loss + penalty / (2 * len(x)) * weights.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach().numpy(), float(bias)


def out_of_fold_scores(x: np.ndarray, y: np.ndarray, folds: np.ndarray, penalty: float) -> np.ndarray:
    scores = np.zeros(len(y))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        weights, bias = fit_logistic((x[train] - mean) / std, y[train], penalty)
        scores[test] = (x[test] - mean) / std @ weights + bias
    return scores


def probe(root: Path, image_size: int, pooling: str, penalty: float, penalties: list[float], folds: int,
          seed: int, out_oof: Path | None, command: str) -> dict:
    from train.datasets import NIHDataset
    from train.evaluation.oof import OutOfFold, summarize

    dataset = NIHDataset(root, reports=None)
    samples = [dataset.sample(i) for i in range(len(dataset))]
    started = time.perf_counter()
    features = pooled_features(samples, image_size, pooling)
    feature_seconds = time.perf_counter() - started
    fold_of = np.array(patient_folds(dataset.patient_ids(), folds, seed))
    labels = np.array([[dataset.labels_of(i).get(f, 0) for f in NIH_FINDINGS] for i in range(len(dataset))])
    scores = {}
    for strength in dict.fromkeys([penalty, *penalties]):
        scores[strength] = np.stack([out_of_fold_scores(features, labels[:, j], fold_of, strength)
                                     for j in range(len(NIH_FINDINGS))], axis=1)
    results = {}
    for strength, logits in scores.items():
        aucs = {f: roc_auc(labels[:, j], logits[:, j]) for j, f in enumerate(NIH_FINDINGS)}
        results[str(strength)] = {"per_finding": aucs, "macro": float(np.mean(list(aucs.values())))}
    setup = f"EfficientNet-Lite0 (ImageNet) grid at {image_size} px, {pooling} pooled ({features.shape[1]}), penalty {penalty:g}"
    if out_oof is not None:
        oof = OutOfFold(tuple(NIH_FINDINGS), dataset.image_ids(), dataset.patient_ids(), fold_of, labels,
                        scores[penalty], {"command": command, "probe": setup, "folds": folds,
                                          "fold_rule": f"train.datasets.splits.patient_folds(patient_ids, {folds}, seed={seed})"})
        oof.save(out_oof)
    summary = summarize(OutOfFold(tuple(NIH_FINDINGS), dataset.image_ids(), dataset.patient_ids(), fold_of, labels,
                                  scores[penalty]))
    return {
        "images": len(samples), "patients": len(set(dataset.patient_ids())), "folds": folds, "seed": seed,
        "positives": {f: int(labels[:, j].sum()) for j, f in enumerate(NIH_FINDINGS)},
        "image_size": image_size, "features": setup, "feature_seconds": round(feature_seconds, 1),
        "macro_with_ci": summary.to_dict()["macro"], "findings_with_ci": summary.to_dict()["findings"],
        "auc_by_penalty": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the NIH sample folder")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--pooling", choices=sorted(POOLINGS), default="mean+grid3")
    parser.add_argument("--penalty", type=float, default=PENALTY, help="L2 strength of the out-of-fold file (1/C)")
    parser.add_argument("--penalties", type=float, nargs="*", default=[], help="more strengths to report")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--seed", type=int, default=0, help="fold seed: the training config's split_seed")
    parser.add_argument("--out-oof", type=Path, default=None, help="folder for the out-of-fold predictions (train.evaluation.oof)")
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} does not exist (the NIH sample lives in ../shared/data)")
    torch.manual_seed(0)
    from train.training.fit import cpu_name

    machine = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    import shlex
    import sys

    command = shlex.join(["python", "-m", "benchmarks.feature_probe", *(argv if argv is not None else sys.argv[1:])])
    result = probe(args.root, args.image_size, args.pooling, args.penalty, args.penalties, args.folds, args.seed,
                   args.out_oof, command)
    emit({"commit": git_commit(), "created": created, "machine": machine, "command": command, **result}, args.out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
