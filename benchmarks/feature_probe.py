"""How well can the findings be told apart in the image tower's features at all? A supervised ceiling.

    python -m benchmarks.feature_probe --out-json docs/benchmarks/feature_probe.json

The zero-shot targets of issue #4 (Cardiomegaly and Effusion AUC >= 0.75) ask a model trained on
340 images to learn the findings from composed reports. This measures what a *supervised* linear
probe reaches on the same 421 NIH images with the same starting tower, as context for those
numbers: per finding, an L2-regularised logistic regression on the tower's pooled grid features
(mean and max over cells), scored out of fold by patient-grouped 5-fold cross-validation, so every
image is scored once by a probe that never saw its patient. The folds come from the same patient
hash as the project's splits.

The probe sees labels, which the zero-shot models never do, and each regularisation strength is
reported, so picking the best one after the fact makes the ceiling generous rather than strict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import emit, git_commit
from lrclr.encoders import EfficientNetLiteTower
from lrclr.labeler import NIH_FINDINGS
from lrclr.preprocess import prepare_images
from train.metrics import roc_auc
from train.splits import patient_position

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-cxr14-sample"
PENALTIES = (100.0, 1000.0, 10000.0)  # total L2 strength on standardised features (sklearn 1/C)
FOLDS = 5


def pooled_features(samples, image_size: int, batch: int = 16) -> np.ndarray:
    """(N, 2 x 1280): mean- and max-pooled EfficientNet-Lite0 (ImageNet) grid of each letterboxed image."""
    tower = EfficientNetLiteTower(image_size, pretrained=True).eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            pixels, _ = prepare_images(samples[start : start + batch], image_size)
            grid = tower(pixels)
            rows.append(torch.cat([grid.mean((2, 3)), grid.amax((2, 3))], 1))
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


def probe(root: Path, image_size: int) -> dict:
    from train.datasets import NIHDataset

    dataset = NIHDataset(root, reports=None)
    samples = [dataset.sample(i) for i in range(len(dataset))]
    started = time.perf_counter()
    features = pooled_features(samples, image_size)
    feature_seconds = time.perf_counter() - started
    folds = np.array([int(patient_position(pid) * FOLDS) for pid in dataset.patient_ids()])
    labels = np.array([[dataset.labels_of(i).get(f, 0) for f in NIH_FINDINGS] for i in range(len(dataset))])
    results = {}
    for penalty in PENALTIES:
        aucs = {f: roc_auc(labels[:, j], out_of_fold_scores(features, labels[:, j], folds, penalty))
                for j, f in enumerate(NIH_FINDINGS)}
        results[str(penalty)] = {"per_finding": aucs, "macro": float(np.mean(list(aucs.values())))}
    return {
        "images": len(samples), "patients": len(set(dataset.patient_ids())), "folds": FOLDS,
        "positives": {f: int(labels[:, j].sum()) for j, f in enumerate(NIH_FINDINGS)},
        "image_size": image_size, "features": "EfficientNet-Lite0 (ImageNet) grid, mean+max pooled (2560)",
        "feature_seconds": round(feature_seconds, 1), "auc_by_penalty": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the NIH sample folder")
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} does not exist (the NIH sample lives in ../shared/data)")
    torch.manual_seed(0)
    from train.fit import cpu_name

    machine = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    emit({"commit": git_commit(), "created": created, "machine": machine, **probe(args.root, args.image_size)},
         args.out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
