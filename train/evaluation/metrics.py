"""Evaluation metrics in plain numpy: ROC AUC with bootstrap CIs, retrieval recall@k, localization.

Everything here is a pure function of arrays, written out rather than imported from a metrics
library so that every number the project reports can be checked by reading a few lines:

- ROC AUC is the Mann-Whitney statistic: the probability that a random positive scores above a
  random negative, ties counting one half. It is computed from weighted counts, so one routine
  serves the point estimate (all weights 1) and every bootstrap resample at once (weights = how
  many times each case was drawn), which makes 1000 resamples a few array operations.
- Bootstrap CIs resample cases with replacement and take the percentile interval; resamples that
  lack a class (AUC undefined) are skipped, and how many were kept is reported.
- Retrieval counts ties against the model, so a model that scores everything equal gets chance.
- Localization compares a heatmap's peak (pointing game) and a set of top regions (IoU) with a
  ground-truth mask in original image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels, x to the right, y down


@dataclass(frozen=True)
class FindingAUC:
    finding: str
    auc: float  # NaN when a class is absent
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int
    n_uncertain: int = 0  # label -1: left out of the AUC
    n_resamples: int = 0  # bootstrap resamples that had both classes


@dataclass(frozen=True)
class MacroAUC:
    auc: float  # mean over findings with both classes
    ci_low: float
    ci_high: float
    findings: tuple[str, ...]  # the findings averaged
    n_resamples: int


@dataclass(frozen=True)
class AUCDifference:
    """AUC of model A minus model B on the same cases, with a paired bootstrap CI."""

    finding: str  # a finding name, or "macro" for the mean over findings with both classes
    difference: float
    ci_low: float
    ci_high: float
    n_resamples: int


@dataclass(frozen=True)
class RetrievalResult:
    direction: str  # "image->report" or "report->image"
    n: int  # candidates (= queries)
    recall: dict[int, float]  # k -> fraction of queries whose true match ranks within the top k


@dataclass(frozen=True)
class LocalizationScore:
    finding: str  # a finding name, or "all" for every (image, finding) pair pooled
    map_kind: str  # "region_attention" (LRCLR) or "patch_similarity" (both models)
    n: int  # (image, finding) pairs with ground truth
    pointing_game: float  # hit rate in [0, 1]
    mean_iou: float
    # Share of the pairs a perfect map could hit on the model's grid (see evaluate.pointing_game_reachable).
    pointing_game_ceiling: float = float("nan")
    # Expected hit rate of a map peaking at a random content cell (evaluate.content_cell_hits).
    pointing_game_chance: float = float("nan")


# ---- ROC -----------------------------------------------------------------------------------------


def _binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.shape} vs {scores.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (drop uncertain cases before scoring)")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return labels.astype(bool), scores


def weighted_auc(labels, scores, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of ``weights`` (R, N): case i counts ``weights[r, i]`` times in row r.

    Cases are grouped by distinct score; a positive beats every negative in a lower group and ties
    half of the negatives in its own group. NaN for rows whose positive or negative weight is 0.
    """
    positive, scores = _binary(labels, scores)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    _, group = np.unique(scores, return_inverse=True)  # group index rises with the score
    n_groups = int(group.max()) + 1 if group.size else 0
    pos_w = np.zeros((weights.shape[0], n_groups))
    neg_w = np.zeros((weights.shape[0], n_groups))
    np.add.at(pos_w.T, group[positive], weights[:, positive].T)
    np.add.at(neg_w.T, group[~positive], weights[:, ~positive].T)
    neg_below = np.cumsum(neg_w, axis=1) - neg_w  # negative weight strictly below each group
    wins = (pos_w * (neg_below + 0.5 * neg_w)).sum(axis=1)
    total = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1.0), np.nan)


def roc_auc(labels, scores) -> float:
    """Mann-Whitney AUC with ties counting 1/2; NaN when only one class is present."""
    positive, _ = _binary(labels, scores)
    return float(weighted_auc(positive, scores, np.ones((1, positive.size)))[0])


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, highest threshold first.

    A case is called positive when its score is >= the threshold; the first point is (0, 0) at
    threshold +inf, the last is (1, 1). NaN rates where a class is absent.
    """
    positive, scores = _binary(labels, scores)
    thresholds = np.unique(scores)[::-1]
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_pos = scores[order], positive[order]
    # Index just past the last case at or above each threshold.
    cut = np.searchsorted(-sorted_scores, -thresholds, side="right")
    tp = np.concatenate([[0], np.cumsum(sorted_pos)[cut - 1]]) if cut.size else np.zeros(1)
    fp = np.concatenate([[0], cut - tp[1:]]) if cut.size else np.zeros(1)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
        fpr = fp / n_neg if n_neg else np.full(fp.shape, np.nan)
    return fpr.astype(np.float64), tpr.astype(np.float64), np.concatenate([[np.inf], thresholds])


# ---- bootstrap -----------------------------------------------------------------------------------


def resample_counts(n_cases: int, n: int, seed: int) -> np.ndarray:
    """(n, n_cases): how often each case is drawn in each of n resamples with replacement."""
    rng = np.random.default_rng(seed)
    if n_cases == 0:
        return np.zeros((n, 0))
    return rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=n).astype(np.float64)


def percentile_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_values(labels, scores, metric: Callable = roc_auc, n: int = 1000, seed: int = 0) -> np.ndarray:
    """The metric on each of n case resamples; NaN for resamples that lack a class."""
    positive, scores = _binary(labels, scores)
    counts = resample_counts(positive.size, n, seed)
    if metric is roc_auc:  # the fast path: every resample in one weighted computation
        return weighted_auc(positive, scores, counts)
    values = np.full(n, np.nan)
    for r, row in enumerate(counts):
        index = np.repeat(np.arange(positive.size), row.astype(int))
        if positive[index].any() and not positive[index].all():
            values[r] = metric(positive[index].astype(int), scores[index])
    return values


def bootstrap_ci(labels, scores, metric: Callable = roc_auc, n: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile (1 - alpha) interval of the metric over n case resamples (one-class ones skipped)."""
    return percentile_interval(bootstrap_values(labels, scores, metric, n, seed), alpha)


def finding_auc(finding: str, labels, scores, n_bootstrap: int = 1000, seed: int = 0,
                alpha: float = 0.05) -> FindingAUC:
    """AUC with its CI for one finding; labels other than 1/0 (-1 uncertain, or any code for
    unlabelled) are left out, and only -1 is counted as uncertain."""
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    known = np.isin(labels, (0, 1))
    values = bootstrap_values(labels[known], scores[known], roc_auc, n_bootstrap, seed)
    low, high = percentile_interval(values, alpha)
    auc = roc_auc(labels[known], scores[known])
    return FindingAUC(finding, auc, low, high, int((labels == 1).sum()), int((labels == 0).sum()),
                      int((labels == -1).sum()), int(np.isfinite(values).sum()))


def macro_auc(findings: Sequence[str], labels: np.ndarray, scores: np.ndarray, n_bootstrap: int = 1000,
              seed: int = 0, alpha: float = 0.05) -> MacroAUC:
    """Mean AUC over the findings with both classes; labels/scores are (cases, findings), labels
    other than 1/0 unknown.

    The CI resamples CASES (all findings of a drawn case together, so their correlation is kept)
    and skips a resample if any averaged finding loses a class there: averaging over a varying set
    of findings would mix different quantities into one interval.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    counts = resample_counts(labels.shape[0], n_bootstrap, seed)
    point, boot, kept = [], [], []
    for j, finding in enumerate(findings):
        known = np.isin(labels[:, j], (0, 1))
        auc = roc_auc(labels[known, j], scores[known, j])
        if np.isfinite(auc):
            kept.append(finding)
            point.append(auc)
            boot.append(weighted_auc(labels[known, j], scores[known, j], counts[:, known]))
    if not kept:
        return MacroAUC(float("nan"), float("nan"), float("nan"), (), 0)
    means = np.mean(boot, axis=0)  # NaN wherever any finding's resample lacked a class
    low, high = percentile_interval(means, alpha)
    return MacroAUC(float(np.mean(point)), low, high, tuple(kept), int(np.isfinite(means).sum()))


def paired_auc_differences(findings: Sequence[str], labels: np.ndarray, scores_a: np.ndarray,
                           scores_b: np.ndarray, n_bootstrap: int = 1000, seed: int = 0,
                           alpha: float = 0.05) -> list[AUCDifference]:
    """Per finding and for the macro mean: AUC(A) - AUC(B) with a PAIRED bootstrap CI.

    Each resample draws the same cases for both models, so what the two have in common (which
    images happen to be hard) cancels out. That makes the interval of a difference much narrower
    than two separate CIs suggest, and it is the interval a claim "A beats B by 0.02" needs. The
    macro mean averages the findings with both classes in the full set, skipping a resample where
    any of them loses a class, exactly as ``macro_auc`` does.
    """
    labels = np.asarray(labels)
    scores_a, scores_b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if not labels.shape == scores_a.shape == scores_b.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores_a.shape} / {scores_b.shape} differ in shape")
    counts = resample_counts(labels.shape[0], n_bootstrap, seed)
    results, point, boot = [], [], []
    for j, finding in enumerate(findings):
        known = np.isin(labels[:, j], (0, 1))
        y = labels[known, j]
        difference = roc_auc(y, scores_a[known, j]) - roc_auc(y, scores_b[known, j])
        resampled = (weighted_auc(y, scores_a[known, j], counts[:, known])
                     - weighted_auc(y, scores_b[known, j], counts[:, known]))
        low, high = percentile_interval(resampled, alpha)
        results.append(AUCDifference(finding, difference, low, high, int(np.isfinite(resampled).sum())))
        if np.isfinite(difference):
            point.append(difference)
            boot.append(resampled)
    if not point:
        return results + [AUCDifference("macro", float("nan"), float("nan"), float("nan"), 0)]
    means = np.mean(boot, axis=0)
    low, high = percentile_interval(means, alpha)
    return results + [AUCDifference("macro", float(np.mean(point)), low, high, int(np.isfinite(means).sum()))]


# ---- retrieval -----------------------------------------------------------------------------------


def recall_at_k(similarity, ks: Sequence[int] = (1, 5, 10), relevant=None) -> dict[int, float]:
    """Recall@k for queries (rows) against candidates (columns); the true match of row i is column i.

    A query's rank counts the non-relevant candidates scoring >= its best relevant one, so ties
    count against the model (a constant similarity gives chance-level recall, not a perfect one).
    ``relevant`` (bool, same shape) marks further correct candidates, e.g. reports with the same
    text as the true one; the diagonal is always relevant. For the other direction pass the
    transposes.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"expected a square (n, n) similarity matrix, got {similarity.shape}")
    n = similarity.shape[0]
    if n == 0:
        return {int(k): float("nan") for k in ks}
    relevant = np.eye(n, dtype=bool) | (False if relevant is None else np.asarray(relevant, dtype=bool))
    best = np.where(relevant, similarity, -np.inf).max(axis=1, keepdims=True)
    ahead = ((similarity >= best) & ~relevant).sum(axis=1)
    return {int(k): float(np.mean(ahead < k)) for k in ks}


# ---- localization --------------------------------------------------------------------------------


def pointing_game_hit(heatmap, mask, tolerance_px: float = 0.0) -> bool:
    """Is the heatmap's peak inside the mask (or within ``tolerance_px`` of it)?

    Ties: maps upsampled from a coarse grid have plateaus (several pixels share the maximum, and
    a flat map is all peak). The hit counts when at least half of the peak pixels lie inside the
    mask, so a single peak pixel gives the usual pointing game, and a flat or spread-out map does
    not score just because the mask is non-empty. NaN pixels are ignored; an all-NaN map or an
    empty mask is a miss.
    """
    heatmap, mask = np.asarray(heatmap, dtype=np.float64), np.asarray(mask, dtype=bool)
    if heatmap.shape != mask.shape:
        raise ValueError(f"heatmap {heatmap.shape} and mask {mask.shape} differ in shape")
    finite = np.isfinite(heatmap)
    if not finite.any() or not mask.any():
        return False
    mask = grown_mask(mask, tolerance_px)
    peak = finite & (heatmap == heatmap[finite].max())
    return bool(2 * (peak & mask).sum() >= peak.sum())


def grown_mask(mask: np.ndarray, tolerance_px: float) -> np.ndarray:
    """The mask plus every pixel within ``tolerance_px`` of it (the pointing game's tolerance)."""
    mask = np.asarray(mask, dtype=bool)
    if tolerance_px <= 0 or not mask.any():  # an empty mask has no distance to grow from
        return mask
    return ndimage.distance_transform_edt(~mask) <= tolerance_px


def iou(mask_a, mask_b) -> float:
    """Intersection over union of two boolean masks; NaN when both are empty (undefined)."""
    a, b = np.asarray(mask_a, dtype=bool), np.asarray(mask_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def boxes_to_mask(boxes: Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """Union of boxes as a bool (H, W) mask: a pixel is in a box when its CENTRE is.

    Pixel (r, c) spans [c, c+1) x [r, r+1), so an integer box (x, y, x + w, y + h) covers exactly
    columns x..x+w-1 and rows y..y+h-1 (the NIH BBox convention); boxes are clipped to the image.
    """
    height, width = shape
    mask = np.zeros((height, width), dtype=bool)
    centres_x, centres_y = np.arange(width) + 0.5, np.arange(height) + 0.5
    for x0, y0, x1, y1 in boxes:
        cols = (centres_x >= min(x0, x1)) & (centres_x < max(x0, x1))
        rows = (centres_y >= min(y0, y1)) & (centres_y < max(y0, y1))
        mask |= np.outer(rows, cols)
    return mask
