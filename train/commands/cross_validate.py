"""``python -m train cross-validate``: the tool every recipe decision is made with.

Patient-grouped K-fold cross-validation over the whole dataset (``train.datasets.splits.patient_folds``):
fold k's model trains on every other fold plus the config's ``extra_train`` datasets (which never
reach a test fold) and scores fold k's images, so every image gets one out-of-fold score per
finding from a model that never saw its patient. A 38-image validation split has 4-9 positives per
finding and intervals 0.3-0.6 wide; out-of-fold scores over all 421 images have 7-86.

Outputs in ``--out``: ``oof.csv`` / ``oof.json`` (train.evaluation.oof), ``summary.json`` and ``summary.md``
(train.evaluation.cv_summary: per-finding and macro AUC with bootstrap CIs, seen and held-out
findings apart, ECE of the raw scores, map specificity, paired CIs against every ``--compare`` run
on the same resamples, training time), and ``fold-k/model`` (each fold's model; ``--init-from-cv``
starts another run's folds from them, e.g. LRCLR from the baseline's folds). The frozen towers'
outputs are cached once for all folds (train.training.feature_cache.SharedCache). A killed run
resumes: finished folds are read back.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lrclr.model.device import autocast
from lrclr.model.letterbox import prepare_images
from lrclr.findings import NIH_FINDINGS
from lrclr.model.weights import code_version
from train.evaluation.report import json_safe
from train.training.fit import add_arguments as add_fit_arguments
from train.training.fit import hardware_description
from lrclr.ranks import Ranks
from train.evaluation.augmented_views import VIEWS, View, fixed_views
from train.evaluation.cv_summary import build_summary, summary_markdown, versus_plain, wall_time
from train.evaluation.map_specificity import map_specificity
from train.evaluation.oof import OutOfFold, summarize
from train.training.run_config import TrainConfig
from train.datasets.splits import Subset, patient_folds

SCORE_BATCH = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fit_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the folds, out-of-fold predictions and summary")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--run-folds", type=int, default=None, metavar="K",
                        help="run (or read back) only folds 0..K-1: a partial run whose out-of-fold files cover "
                             "those folds' test images only, and say so (default: every fold)")
    parser.add_argument("--no-regions", action="store_true", help="train the global-only baseline (as pretrain does)")
    parser.add_argument("--init-from-cv", type=Path, default=None, metavar="DIR",
                        help="start fold k from DIR/fold-k/model (another cross-validation's fold models); a "
                             "config's own init_from is refused, since a model trained on all images has seen every test fold")
    parser.add_argument("--compare", type=Path, action="append", default=[], metavar="RUN",
                        help="another run's out-of-fold predictions (folder or oof.json/csv) for paired AUC differences")
    parser.add_argument("--score-local-weights", default="", metavar="W,W,...",
                        help="also score every fold model at these zero_shot_local_weight values (no retraining)")
    parser.add_argument("--test-time-views", type=int, default=1, metavar="K",
                        help="also score every fold model averaged over the first K fixed views of each image "
                             "(train.evaluation.augmented_views; 1: off), written to test-time-views-K/")
    parser.add_argument("--map-images", type=int, default=20,
                        help="test images per fold for map specificity (0: skip)")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each fold's training checkpoints")


class IndexedView:
    """``base`` restricted to ``indices`` (global indices keep each item's augmentation stream)."""

    def __init__(self, base, indices: Sequence[int], name: str):
        self.base, self.indices, self.name = base, list(indices), name

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.base[self.indices[index]]

    def sample(self, index: int):
        return self.base.sample(self.indices[index])

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def labels_of(self, index: int) -> dict[str, int]:
        return self.base.labels_of(self.indices[index])

    def patient_ids(self) -> list[str]:
        ids = self.base.patient_ids()
        return [ids[i] for i in self.indices]


def fold_indices(folds: np.ndarray, fold: int, n_extra: int) -> tuple[list[int], np.ndarray]:
    """(training indices into [dataset..., extra_train...], test indices into the dataset) of a fold:
    every other fold's images and all extra training data train; the fold's own images test."""
    n = len(folds)
    return [i for i in range(n) if folds[i] != fold] + list(range(n, n + n_extra)), np.flatnonzero(folds == fold)


def fold_logits(model, samples, findings: Sequence[str], local_weights: Sequence[float | None],
                views: Sequence[View] = ()) -> dict:
    """Raw zero-shot logits (len(samples), F) at each local weight (None: the config's), computed
    exactly as ``model.zero_shot`` does, with one image encoding for all weights; with ``views``
    (the first one the image itself), also the config weight's logits averaged over those views,
    under ``views_key(len(views))``."""
    plain = [sample.pixels for sample in samples]
    out = _logits_of(model, plain, findings, local_weights)
    if views:
        if views[0] != VIEWS[0]:
            raise ValueError("the first test-time view must be the image itself")
        others = [_logits_of(model, [view.apply(p) for p in plain], findings, (None,))[None] for view in views[1:]]
        out[views_key(len(views))] = np.mean([out[None], *others], axis=0)
    return out


def views_key(count: int) -> str:
    return f"test-time-views-{count}"


def _logits_of(model, images, findings, local_weights) -> dict:
    out = {w: [] for w in local_weights}
    with torch.inference_mode():
        for start in range(0, len(images), SCORE_BATCH):
            pixels, letterboxes = prepare_images(images[start : start + SCORE_BATCH], model.config.image_size,
                                                 model.device_info.device)
            with autocast(model.device_info):
                features = model.encode_image(pixels, letterboxes)
                for weight in local_weights:
                    out[weight].append(model.score_features(features, findings, weight).logits)
    return {w: np.concatenate(parts).astype(np.float64) for w, parts in out.items()}


def _fold_config(config: TrainConfig, out: Path, fold: int, init_from_cv: Path | None) -> TrainConfig:
    fold_config = copy.deepcopy(config)
    fold_config.output_dir = str(out / f"fold-{fold}" / "run")
    fold_config.eval_every = 0  # no validation split inside a fold: the test fold is never looked at
    if init_from_cv is not None:
        start = init_from_cv / f"fold-{fold}" / "model"
        if not (start / "model.safetensors").is_file():
            raise SystemExit(f"--init-from-cv: {start} has no model (run that cross-validation first)")
        fold_config.init_from = str(start)
    return fold_config


def _train_fold(fold_config, train_view, shared, indices, device, resume: bool):
    from train.training.trainer import Trainer

    # One line per fold instead of a progress bar per fold.
    trainer = Trainer(fold_config, train_view, None, Ranks(), device, resume=resume,
                      show_progress=False, shared_cache=(shared, indices) if shared is not None else None)
    trainer.fit()
    return trainer


def _save_fold_model(run_dir: Path, folder: Path, keep_checkpoints: bool) -> None:
    from train.commands.export import export_run

    export_run(run_dir, folder, which="latest")
    if not keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


@dataclass
class CrossValidationData:
    """What every fold reads: the dataset, its folds, and the training pool (dataset + extra_train)."""

    dataset: object
    findings: tuple[str, ...]
    folds: np.ndarray  # (N,) fold of each dataset image
    everything: object  # the dataset followed by every extra_train dataset, augmented
    n_extra: int
    shared: object  # train.training.feature_cache.SharedCache, or None when nothing is cached
    evaluation: Subset  # the dataset unaugmented, for scoring test folds
    labels: np.ndarray  # (N, F) 1 / 0 / -1 from the dataset (never the held-out view)


def prepare(config: TrainConfig, n_folds: int) -> CrossValidationData:
    from train.datasets import build_dataset
    from train.training.feature_cache import SharedCache
    from train.datasets.held_out import HeldOutView
    from train.datasets.mixed import with_extra_training_data

    dataset = build_dataset(config.dataset)
    findings = tuple(getattr(dataset, "findings", NIH_FINDINGS))
    n = len(dataset)
    everything = with_extra_training_data(Subset(dataset, range(n), name=f"{dataset.name}:all"), config.extra_train)
    # The cache holds what training sees: with held-out findings, the stripped reports.
    cached = everything if not config.held_out_findings else HeldOutView(everything, config.held_out_findings)
    return CrossValidationData(
        dataset, findings, np.array(patient_folds(dataset.patient_ids(), n_folds, config.split_seed)), everything,
        len(everything) - n, SharedCache(cached) if config.cache_frozen_towers else None,
        Subset(dataset, range(n), transform=None, name=f"{dataset.name}:test"),
        np.array([[dataset.labels_of(i).get(f, -1) for f in findings] for i in range(n)], dtype=int))


def run_fold(data: CrossValidationData, config: TrainConfig, args, fold: int, weights, device) -> dict:
    """Train fold ``fold``'s model, score its test images at every local weight, save the model."""
    started = time.perf_counter()
    indices, test = fold_indices(data.folds, fold, data.n_extra)
    train_view = IndexedView(data.everything, indices, f"{data.dataset.name}:cv{fold}-train")
    fold_config = _fold_config(config, args.out, fold, args.init_from_cv)
    trainer = _train_fold(fold_config, train_view, data.shared, indices, device, not args.no_resume)
    model = trainer.model.eval()
    model.to_device(device.type)
    samples = [data.evaluation.sample(int(i)) for i in test]
    views = fixed_views(args.test_time_views) if args.test_time_views > 1 else ()
    scored = fold_logits(model, samples, data.findings, weights, views)
    maps = map_specificity(model, samples[: args.map_images]) if args.map_images else {}
    _save_fold_model(Path(fold_config.output_dir), args.out / f"fold-{fold}" / "model", args.keep_checkpoints)
    return {"fold": fold, "n_train": len(indices), "n_test": len(test),
            "training_seconds": round(trainer.state.elapsed_seconds, 1),
            # Kept with the fold so that a rerun reading it back still reports what the run cost.
            "wall_seconds": round(time.perf_counter() - started, 1),
            "map_specificity": {k: v.mean_correlation for k, v in maps.items()},
            "logits": {str(w): values.tolist() for w, values in scored.items()}}


def run(args: argparse.Namespace) -> int:
    config = TrainConfig.load(args.config, args.set)
    if args.no_regions:
        config.model["use_regions"] = False
    if config.init_from and args.init_from_cv is None:
        raise SystemExit(f"the config starts from {config.init_from}; a model trained on all images has seen every "
                         "test fold. Pass --init-from-cv DIR (the fold models of an earlier cross-validation) "
                         "or --set init_from=null")
    weights = [None] + [float(w) for w in args.score_local_weights.split(",") if w.strip()]
    variants = weights + ([views_key(args.test_time_views)] if args.test_time_views > 1 else [])
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    data = prepare(config, args.folds)
    n = len(data.dataset)
    logits = {w: np.full((n, len(data.findings)), np.nan) for w in variants}
    fold_records, read_back = [], []
    done = list(range(args.folds if args.run_folds is None else min(args.run_folds, args.folds)))
    for fold in done:
        record_path = args.out / f"fold-{fold}" / "result.json"
        if record_path.is_file() and not args.no_resume:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            read_back.append(record)
            print(f"fold {fold}: read back from {record_path}")
        else:
            record = run_fold(data, config, args, fold, weights, device)
            record_path.write_text(json.dumps(json_safe(record)) + "\n", encoding="utf-8")
            print(f"fold {fold}: {record['n_test']} test images, trained {record['training_seconds']:.0f} s, "
                  f"map specificity {record['map_specificity']}")
        test = np.flatnonzero(data.folds == fold)
        for w in variants:
            if str(w) not in record["logits"]:
                raise SystemExit(f"{record_path} was scored without {w}: rerun that fold (delete the file) "
                                 "or leave the option out")
            logits[w][test] = np.array(record["logits"][str(w)], dtype=np.float64)
        fold_records.append(record)
    runs = write_predictions(data, config, args, logits, device, np.flatnonzero(np.isin(data.folds, done)), done)
    summary = build_summary(runs[args.out], config.held_out_findings, args.command_line, args.folds, args.compare,
                            fold_records, wall_time(time.perf_counter() - started, read_back))
    summary["macro_at_other_local_weights"] = {folder.name: summarize(oof).macro.auc for folder, oof in runs.items()
                                               if folder != args.out and folder.name.startswith("local-weight")}
    summary["test_time_views"] = {folder.name: versus_plain(oof, runs[args.out]) for folder, oof in runs.items()
                                  if folder.name.startswith("test-time-views")}
    (args.out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    (args.out / "summary.md").write_text(summary_markdown(summary) + "\n", encoding="utf-8")
    print(summary_markdown(summary))
    return 0


def write_predictions(data: CrossValidationData, config: TrainConfig, args, logits: dict, device,
                      rows: np.ndarray, done: list[int]) -> dict:
    """The out-of-fold files for the test images of the folds in ``done`` (``rows``): the config's
    local weight in ``--out``, the others in subfolders."""
    meta = {"command": args.command_line, "config": config.to_dict(), "folds": args.folds, "folds_run": done,
            "fold_rule": f"train.datasets.splits.patient_folds(patient_ids, {args.folds}, seed={config.split_seed})",
            "dataset": config.dataset, "extra_train": config.extra_train, "n_extra_train": data.n_extra,
            "held_out_findings": list(config.held_out_findings), "code_version": code_version(),
            "hardware": hardware_description(device, Ranks())}
    image_ids, patients = _image_ids(data.dataset), list(data.dataset.patient_ids())
    image_ids, patients = [image_ids[r] for r in rows], [patients[r] for r in rows]
    runs = {}
    for w, values in logits.items():
        views = isinstance(w, str)  # views_key: the config's weight, averaged over test-time views
        folder = args.out if w is None else args.out / (w if views else f"local-weight-{w:g}")
        local_weight = w if w is not None and not views else _config_local_weight(config)
        extra = {"test_time_views": [v.name for v in fixed_views(args.test_time_views)]} if views else {}
        oof = OutOfFold(data.findings, image_ids, patients, data.folds[rows], data.labels[rows], values[rows],
                        {**meta, "zero_shot_local_weight": local_weight, **extra})
        oof.save(folder)
        runs[folder] = oof
    return runs


def _image_ids(dataset) -> list[str]:
    if hasattr(dataset, "image_ids"):
        return [str(i) for i in dataset.image_ids()]
    return [dataset.sample(i).image_id for i in range(len(dataset))]  # decodes every image once


def _config_local_weight(config: TrainConfig) -> float:
    from lrclr.model.config import LRCLRConfig

    if config.init_from:
        return float(config.model.get("zero_shot_local_weight", LRCLRConfig.load(config.init_from).zero_shot_local_weight))
    return LRCLRConfig.from_dict(config.model).zero_shot_local_weight
