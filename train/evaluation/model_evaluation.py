"""One pass of a model over samples: zero-shot AUC with CIs, retrieval and localization (``python -m train evaluate``).

For each model, one pass over the samples (so a lazily loading dataset holds one batch at a time):

- Zero-shot: the scores ``model.zero_shot`` gives (the app's), from the same image encoding the retrieval
  uses, so the image tower runs once per sample for both; per-finding AUC against
  ``sample.labels`` (uncertain -1 and unlabelled cases left out) with a bootstrap CI, and the macro
  mean over findings that have both classes, with a CI from resampling whole cases.
- Retrieval: global image and report embeddings (``prepare_images`` + ``encode_image`` with the
  letterboxes, as the model's own inference does); recall@k in both directions. Reports with
  identical text are interchangeable, so retrieving any of them counts as retrieving the true one.
- Localization, for every finding a sample has a mask (or boxes) for: the finding's phrase
  ("pleural effusion") is grounded with ``model.explain``; its word maps (averaged over the phrase's
  words) are the LRCLR region attention and, for both models, the word-patch similarity. Pointing
  game: is the centre of the map's peak cell, in original pixels, inside the mask (see
  ``peak_heatmap`` for why the peak is not taken on the bilinear upsampling); IoU of the union of
  the top-N cells' boxes with the mask. The same N for both map kinds keeps the comparison fair.

The localization measures are in :mod:`train.evaluation.localization`; the command that compares
models and writes the outputs is :mod:`train.commands.evaluate`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from lrclr.model.device import autocast
from lrclr.model.letterbox import prepare_images
from train.evaluation.metrics import (
    AUCDifference, FindingAUC, LocalizationScore, MacroAUC, RetrievalResult, finding_auc, macro_auc, paired_auc_differences, recall_at_k,
    roc_curve,
)
from train.evaluation.report import json_safe
from train.datasets.sample import Sample

from train.evaluation.localization import TOP_REGIONS, LocalizationCase, localize_sample, summarise_localization

KS = (1, 5, 10)
UNLABELLED = -2  # a finding missing from sample.labels: unknown, but not "uncertain" (-1)


@dataclass
class EvaluationResult:
    model_id: str
    uses_regions: bool
    n_samples: int
    findings: list[FindingAUC]
    macro: MacroAUC
    retrieval: list[RetrievalResult]
    localization: list[LocalizationScore]
    roc: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # finding -> {"fpr", "tpr"}
    settings: dict[str, Any] = field(default_factory=dict)  # bootstrap, seed, top_regions, ks, ...
    seconds: float = 0.0
    # Per case (cases, findings), kept in memory for paired comparisons between models; not saved.
    case_labels: np.ndarray | None = field(default=None, repr=False, compare=False)
    case_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: NaN becomes null and recall@k keys become strings."""
        data = dataclasses.asdict(self)
        del data["case_labels"], data["case_scores"]
        for item in data["retrieval"]:
            item["recall"] = {str(k): v for k, v in item["recall"].items()}
        return json_safe(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        def number(value):
            return float("nan") if value is None else value

        def build(kind, item):
            return kind(**{k: number(v) if isinstance(v, (float, type(None))) else v for k, v in item.items()})

        macro = dict(data["macro"], findings=tuple(data["macro"]["findings"]))
        retrieval = [RetrievalResult(r["direction"], r["n"], {int(k): number(v) for k, v in r["recall"].items()})
                     for r in data["retrieval"]]
        return cls(
            data["model_id"], data["uses_regions"], data["n_samples"],
            [build(FindingAUC, f) for f in data["findings"]], build(MacroAUC, macro), retrieval,
            [build(LocalizationScore, s) for s in data["localization"]], data.get("roc", {}),
            data.get("settings", {}), data.get("seconds", 0.0),
        )


# ---- one model -----------------------------------------------------------------------------------


@dataclass
class _Collected:
    labels: list[np.ndarray] = field(default_factory=list)  # per batch (B, F): 1, 0, -1, UNLABELLED
    scores: list[np.ndarray] = field(default_factory=list)  # per batch (B, F)
    images: list[np.ndarray] = field(default_factory=list)  # per batch (B', D), samples with reports
    texts: list[np.ndarray] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    cases: list[LocalizationCase] = field(default_factory=list)
    n_samples: int = 0


def evaluate_model(model, samples: Iterable[Sample], findings: Sequence[str], *, batch_size: int = 16,
                   bootstrap: int = 1000, seed: int = 0, top_regions: int = TOP_REGIONS, ks: Sequence[int] = KS,
                   missing_as_negative: bool = False, tolerance_px: float = 0.0) -> EvaluationResult:
    """Evaluate one model on samples (a list, a dataset, or any iterable, read once)."""
    started = time.perf_counter()
    model.eval()
    findings = tuple(findings)
    collected = _Collected()
    for batch in _batches(samples, batch_size):
        collected.n_samples += len(batch)
        _score_batch(model, batch, findings, collected, missing_as_negative)
        for sample in batch:
            collected.cases.extend(localize_sample(model, sample, top_regions, tolerance_px))
    labels = np.concatenate(collected.labels) if collected.labels else np.zeros((0, len(findings)), int)
    scores = np.concatenate(collected.scores) if collected.scores else np.zeros((0, len(findings)))
    per_finding = [finding_auc(f, labels[:, j], scores[:, j], bootstrap, seed) for j, f in enumerate(findings)]
    return EvaluationResult(
        model_id=model.model_id, uses_regions=model.interaction is not None, n_samples=collected.n_samples,
        findings=per_finding, macro=macro_auc(findings, labels, scores, bootstrap, seed),
        retrieval=_retrieval(collected, ks), localization=summarise_localization(collected.cases),
        roc=roc_curves(findings, labels, scores),
        settings={"bootstrap": bootstrap, "seed": seed, "top_regions": top_regions, "ks": list(ks),
                  "missing_as_negative": missing_as_negative, "pointing_tolerance_px": tolerance_px},
        seconds=round(time.perf_counter() - started, 3), case_labels=labels, case_scores=scores,
    )


def pair_name(first: str, other: str) -> str:
    """How a paired difference is keyed in the outputs and model cards: "first - other"."""
    return f"{first} - {other}"


def paired_differences(results: dict[str, EvaluationResult]) -> dict[str, list[AUCDifference]]:
    """The first model against each other one ("A - B" -> per finding and macro), paired by case.

    Only meaningful for results of the same samples in the same order, as ``run`` produces.
    """
    names = list(results)
    if len(names) < 2:
        return {}
    first = results[names[0]]
    findings = [item.finding for item in first.findings]
    settings = first.settings
    return {pair_name(names[0], other): paired_auc_differences(
                findings, first.case_labels, first.case_scores, results[other].case_scores,
                settings.get("bootstrap", 1000), settings.get("seed", 0))
            for other in names[1:]}


def _batches(samples: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    # A Dataset is indexed, not iterated: iterating a torch Dataset relies on IndexError to stop.
    items = (samples[i] for i in range(len(samples))) if hasattr(samples, "__getitem__") else iter(samples)
    batch: list[Sample] = []
    for sample in items:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score_batch(model, batch: list[Sample], findings: tuple[str, ...], out: _Collected,
                 missing_as_negative: bool) -> None:
    """Zero-shot scores and retrieval embeddings from ONE pass of the image tower over the batch.

    ``model.score_features`` on these features is exactly what ``model.zero_shot`` computes.
    """
    missing = 0 if missing_as_negative else UNLABELLED
    device = model.device_info.device
    paired = [i for i, s in enumerate(batch) if s.report.strip()]
    with torch.inference_mode(), autocast(model.device_info):
        pixels, letterboxes = prepare_images([s.pixels for s in batch], model.config.image_size)
        features = model.encode_image(pixels.to(device), letterboxes)
        if findings:
            scores = model.score_features(features, findings).probabilities
        if paired:
            texts = model.encode_text(model.tokenize([batch[i].report for i in paired]).to(device)).global_embedding
    if findings:
        out.scores.append(scores.astype(np.float64))
        out.labels.append(np.array([[int(s.labels.get(f, missing)) for f in findings] for s in batch]))
    if paired:
        out.images.append(features.global_embedding[paired].float().cpu().numpy())
        out.texts.append(texts.float().cpu().numpy())
        out.reports.extend(batch[i].report.strip() for i in paired)


def _retrieval(collected: _Collected, ks: Sequence[int]) -> list[RetrievalResult]:
    if not collected.images:
        return []
    similarity = np.concatenate(collected.images) @ np.concatenate(collected.texts).T
    reports = np.array(collected.reports, dtype=object)
    same_text = reports[:, None] == reports[None, :]  # symmetric, so it serves both directions
    n = len(reports)
    return [
        RetrievalResult("image->report", n, recall_at_k(similarity, ks, relevant=same_text)),
        RetrievalResult("report->image", n, recall_at_k(similarity.T, ks, relevant=same_text)),
    ]


def roc_curves(findings, labels: np.ndarray, scores: np.ndarray) -> dict[str, dict[str, list[float]]]:
    curves = {}
    for j, finding in enumerate(findings):
        known = np.isin(labels[:, j], (0, 1))
        if len(set(labels[known, j].tolist())) == 2:
            fpr, tpr, _ = roc_curve(labels[known, j], scores[known, j])
            curves[finding] = {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist()}
    return curves


# ---- localization --------------------------------------------------------------------------------


# ---- side by side --------------------------------------------------------------------------------


