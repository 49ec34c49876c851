"""train.evaluation.metrics on small cases computed by hand (the hand computation is written beside each)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from train.evaluation.metrics import (
    boxes_to_mask, bootstrap_ci, finding_auc, iou, macro_auc, paired_auc_differences, pointing_game_hit,
    recall_at_k, roc_auc, roc_curve, weighted_auc,
)

# Two positives, three negatives, one tie across the classes.
LABELS = [1, 1, 0, 0, 0]
SCORES = [0.9, 0.5, 0.5, 0.3, 0.1]


def test_auc_hand_computed_with_a_tie():
    # Pairs (positive, negative), 2 x 3 = 6:
    #   0.9 beats 0.5, 0.3, 0.1                      -> 3
    #   0.5 ties 0.5 (1/2), beats 0.3 and 0.1        -> 2.5
    # AUC = 5.5 / 6. Same by ranks: 0.1->1, 0.3->2, 0.5,0.5->3.5, 0.9->5;
    # U = (5 + 3.5) - 2 * 3 / 2 = 5.5.
    assert roc_auc(LABELS, SCORES) == pytest.approx(5.5 / 6)


def test_auc_extremes_and_order_invariance():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    permutation = [3, 0, 4, 1, 2]
    assert roc_auc(np.array(LABELS)[permutation], np.array(SCORES)[permutation]) == pytest.approx(5.5 / 6)


def test_auc_is_nan_with_one_class():
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.2]))
    assert math.isnan(roc_auc([], []))


def test_auc_rejects_uncertain_labels_and_length_mismatch():
    with pytest.raises(ValueError):
        roc_auc([1, -1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        roc_auc([1, 0], [0.1])


def test_weighted_auc_equals_auc_of_the_repeated_cases():
    # Weights (2, 1, 0, 1, 1) = cases 0, 0, 1, 3, 4: positives 0.9, 0.9, 0.5 vs negatives 0.3, 0.1
    # -> every pair a win, AUC 1. The negative 0.5 has weight 0, so the tie disappears.
    weights = np.array([[2, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    values = weighted_auc(LABELS, SCORES, weights)
    assert values[0] == pytest.approx(1.0)
    assert values[1] == pytest.approx(5.5 / 6)
    assert math.isnan(values[2])  # both positives drawn zero times: AUC undefined


def test_roc_curve_hand_computed():
    # Thresholds inf, 0.9, 0.5, 0.3, 0.1 (score >= threshold is called positive):
    #   0.9: TP 1 FP 0 -> (0, 1/2);  0.5: TP 2 FP 1 -> (1/3, 1);  0.3: (2/3, 1);  0.1: (1, 1)
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.5, 0.3, 0.1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(LABELS, SCORES))


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return labels, rng.normal(size=n) + labels


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_data():
    small, large = _synthetic(60, 0), _synthetic(2000, 1)
    low_s, high_s = bootstrap_ci(*small, n=500, seed=0)
    low_l, high_l = bootstrap_ci(*large, n=500, seed=0)
    assert low_s <= roc_auc(*small) <= high_s
    assert low_l <= roc_auc(*large) <= high_l
    assert high_l - low_l < 0.5 * (high_s - low_s)
    assert bootstrap_ci(*small, n=500, seed=0) == (low_s, high_s)  # seeded: reproducible


def test_bootstrap_fast_path_matches_the_generic_loop():
    labels, scores = _synthetic(40, 2)
    fast = bootstrap_ci(labels, scores, n=300, seed=3)
    slow = bootstrap_ci(labels, scores, metric=lambda y, s: roc_auc(y, s), n=300, seed=3)
    assert fast == pytest.approx(slow)


def test_bootstrap_skips_one_class_resamples():
    # One positive among 20: about (19/20)^20 = 36% of resamples have no positive and are skipped.
    labels = np.zeros(20, dtype=int)
    labels[0] = 1
    result = finding_auc("X", labels, np.linspace(1, 0, 20), n_bootstrap=400)
    assert result.auc == 1.0 and (result.ci_low, result.ci_high) == (1.0, 1.0)
    assert 150 < result.n_resamples < 350
    assert (result.n_positive, result.n_negative) == (1, 19)


def test_finding_auc_leaves_uncertain_cases_out():
    result = finding_auc("Effusion", LABELS + [-1, -1], SCORES + [0.0, 1.0], n_bootstrap=50)
    assert result.auc == pytest.approx(5.5 / 6)
    assert (result.n_positive, result.n_negative, result.n_uncertain) == (2, 3, 2)


def test_macro_auc_averages_findings_with_both_classes():
    labels = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [0, 0, -1]])
    scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.1, 0.5], [0.1, 0.9, 0.5], [0.2, 0.3, 0.5]])
    # Finding A: positives 0.9, 0.8 vs 0.1, 0.2 -> 1.0. Finding B: positives 0.2, 0.9 vs 0.1, 0.3
    # -> (0.2>0.1) + (0.9>0.1) + (0.9>0.3) = 3 of 4 = 0.75. Finding C has no negative: left out.
    result = macro_auc(["A", "B", "C"], labels, scores, n_bootstrap=200)
    assert result.auc == pytest.approx(0.875)
    assert result.findings == ("A", "B")
    assert 0 < result.n_resamples <= 200
    assert result.ci_low <= result.ci_high


def test_paired_differences_hand_computed_and_paired():
    labels = np.array([[1, 1], [1, 0], [0, 1], [0, 0], [0, -1]])
    scores_a = np.array([[0.9, 0.8], [0.8, 0.1], [0.1, 0.9], [0.2, 0.3], [0.3, 0.5]])
    # In finding A, B drops one positive to 0.25: positives 0.9, 0.25 vs negatives 0.1, 0.2, 0.3 beat
    # 3 + 2 of 6 pairs, so AUC 5/6 against A's 6/6.
    scores_b = scores_a.copy()
    scores_b[1, 0] = 0.25
    rows = paired_auc_differences(["A", "B"], labels, scores_a, scores_b, n_bootstrap=300)
    by_name = {row.finding: row for row in rows}
    assert by_name["A"].difference == pytest.approx(1 / 6)
    assert by_name["B"].difference == 0.0  # identical scores (case 4's -1 is left out)
    # Identical scores differ by exactly 0 in every resample: pairing leaves no spread at all.
    assert by_name["B"].ci_low == by_name["B"].ci_high == 0.0
    assert by_name["macro"].difference == pytest.approx(1 / 12)
    assert 0 <= by_name["A"].ci_low <= by_name["A"].difference <= by_name["A"].ci_high
    assert 0 < by_name["macro"].n_resamples <= 300
    with pytest.raises(ValueError):
        paired_auc_differences(["A", "B"], labels, scores_a, scores_b[:3])


def test_recall_at_k_hand_made_matrix():
    similarity = np.array([
        [0.9, 0.1, 0.2],  # true match first -> rank 1
        [0.8, 0.5, 0.1],  # 0.8 ahead of the true 0.5 -> rank 2
        [0.3, 0.3, 0.3],  # tied with two others: ties count against -> rank 3
    ])
    assert recall_at_k(similarity, ks=(1, 2, 3)) == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})
    # Report -> image: columns as queries. Column 2 (0.2, 0.1, 0.3): 0.3 is the highest -> rank 1.
    assert recall_at_k(similarity.T, ks=(1,)) == {1: 1.0}
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((2, 3)))


def test_pointing_game_hit_and_miss():
    mask = np.zeros((6, 6), dtype=bool)
    mask[1:3, 1:3] = True
    heatmap = np.zeros((6, 6))
    heatmap[2, 2] = 1.0
    assert pointing_game_hit(heatmap, mask)
    heatmap[5, 5] = 2.0
    assert not pointing_game_hit(heatmap, mask)
    # (5, 5) is 3 pixels from the mask corner (2, 2) in rows and columns: sqrt(18) = 4.24 px.
    assert pointing_game_hit(heatmap, mask, tolerance_px=4.3)
    assert not pointing_game_hit(heatmap, mask, tolerance_px=4.2)


def test_pointing_game_ties_need_half_the_peak_inside():
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, :2] = True
    plateau = np.zeros((4, 4))
    plateau[0, 1:3] = 1.0  # two peak pixels, one inside
    assert pointing_game_hit(plateau, mask)
    plateau[0, 3] = 1.0  # three peak pixels, one inside
    assert not pointing_game_hit(plateau, mask)
    assert not pointing_game_hit(np.ones((4, 4)), mask)  # flat map: all peak, 2 of 16 inside
    assert not pointing_game_hit(plateau, np.zeros((4, 4), dtype=bool))
    nan_map = np.full((4, 4), np.nan)
    nan_map[0, 0] = -1.0
    assert pointing_game_hit(nan_map, mask)


def test_iou_hand_computed():
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    a[0:2, 0:2] = True  # 4 pixels
    b[1:3, 1:3] = True  # 4 pixels, overlapping a at (1, 1) only
    assert iou(a, b) == pytest.approx(1 / 7)  # 1 / (4 + 4 - 1)
    assert iou(a, a) == 1.0
    assert iou(a, ~a) == 0.0
    assert math.isnan(iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))


def test_boxes_to_mask_uses_pixel_centres():
    mask = boxes_to_mask([(1, 2, 4, 3)], (5, 6))  # NIH style x=1, y=2, w=3, h=1
    expected = np.zeros((5, 6), dtype=bool)
    expected[2, 1:4] = True
    np.testing.assert_array_equal(mask, expected)
    # Centres 0.5 and 1.5 lie in [0.4, 1.6); 2.5 does not. Second box overlaps and is clipped.
    mask = boxes_to_mask([(0.4, 0, 1.6, 1), (5, 4, 99, 99)], (5, 6))
    assert mask[0].tolist() == [True, True, False, False, False, False]
    assert mask[4, 5] and mask.sum() == 3
    assert not boxes_to_mask([], (3, 3)).any()


def test_recall_counts_identical_reports_as_correct():
    # Reports 0 and 1 have the same text, so their embeddings (columns) score alike.
    similarity = np.array([
        [0.2, 0.2, 0.9],  # true 0.2 ties its twin (relevant) but 0.9 is ahead -> rank 2
        [0.7, 0.7, 0.1],  # tie with the twin only -> rank 1 (without `relevant`: rank 2)
        [0.1, 0.1, 0.5],
    ])
    same = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    assert recall_at_k(similarity, ks=(1, 2), relevant=same) == pytest.approx({1: 2 / 3, 2: 1.0})
    assert recall_at_k(similarity, ks=(1,)) == pytest.approx({1: 1 / 3})
