"""Calibration: Platt fits, operating points, ECE, and the library applying a card's calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrclr.model.calibration import Calibration, FindingCalibration, OperatingPoint, sigmoid
from lrclr.model.config import tiny_config
from lrclr.errors import ModelLoadError
from lrclr.model.lrclr_model import LRCLRModel
from train.commands.calibrate import (
    calibration_report, cross_fitted_probabilities, expected_calibration_error, fit_calibration, fit_platt,
    youden_point,
)
from train.evaluation.oof import OutOfFold


def _miscalibrated(n: int = 4000, seed: int = 0):
    """Labels drawn from sigmoid(0.5 * z - 1), reported as the logit z: over-confident and biased."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=n)
    y = (rng.random(n) < sigmoid(0.5 * z - 1.0)).astype(int)
    return z, y


def test_platt_recovers_the_true_map_and_lowers_ece():
    z, y = _miscalibrated()
    slope, intercept = fit_platt(z, y)
    assert slope == pytest.approx(0.5, abs=0.06) and intercept == pytest.approx(-1.0, abs=0.12)
    raw = expected_calibration_error(y[:, None], z[:, None])
    after = expected_calibration_error(y[:, None], probabilities=sigmoid(slope * z + intercept)[:, None])
    assert raw > 0.1 and after < 0.03


def test_ece_is_zero_for_exact_frequencies_and_ignores_unknown_labels():
    labels = np.array([[1], [0], [1], [0], [-1]])
    probabilities = np.array([[0.55], [0.55], [0.55], [0.55], [0.99]])  # one bin, observed 0.5
    assert expected_calibration_error(labels, probabilities=probabilities) == pytest.approx(0.05)
    assert expected_calibration_error(np.array([[1], [0]]), probabilities=np.array([[1.0], [0.0]])) == 0.0


def test_youden_point_finds_the_separating_threshold():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert youden_point(scores, labels) == (0.7, 1.0, 1.0)


def _oof_from(z, y, folds=4):
    return OutOfFold(("A",), [f"i{k}" for k in range(len(z))], [f"p{k}" for k in range(len(z))],
                     np.arange(len(z)) % folds, y[:, None], z[:, None])


def test_cross_fitted_calibration_uses_other_folds_only():
    z, y = _miscalibrated(2000)
    oof = _oof_from(z, y)
    # Fold 0's scores get a different meaning: a fit that peeked at fold 0 would absorb it.
    z_shifted = z.copy()
    z_shifted[oof.folds == 0] += 4.0
    shifted = _oof_from(z_shifted, y)
    calibrated = cross_fitted_probabilities(shifted)
    others = fit_platt(z_shifted[shifted.folds != 0], y[shifted.folds != 0])
    np.testing.assert_allclose(calibrated[shifted.folds == 0, 0],
                               sigmoid(others[0] * z_shifted[shifted.folds == 0] + others[1]))
    report = calibration_report(oof)
    assert report["ece_calibrated_cross_fitted"] < report["ece_raw"]
    fitted = fit_calibration(oof, "synthetic")
    point = fitted.findings["A"].operating_point
    assert 0 < point.threshold < 1 and 0.5 < point.sensitivity <= 1 and 0.5 < point.specificity <= 1


def test_calibration_round_trips_through_a_card_and_leaves_unknown_findings_raw():
    calibration = Calibration({"Effusion": FindingCalibration(0.5, -1.0, OperatingPoint(0.3, 0.8, 0.7))},
                              fitted_on="test")
    again = Calibration.from_card({"calibration": json.loads(json.dumps(calibration.to_dict()))})
    assert again == calibration
    logits = np.array([[2.0, 2.0]])
    probabilities, calibrated = again.apply(["Effusion", "rib fracture"], logits)
    assert calibrated == (True, False)
    assert probabilities[0, 0] == pytest.approx(float(sigmoid(0.5 * 2 - 1)))
    assert probabilities[0, 1] == pytest.approx(float(sigmoid(2.0)))


def test_the_model_applies_its_cards_calibration(tmp_path):
    model = LRCLRModel(tiny_config(), pretrained_towers=False).eval()
    images = [np.random.default_rng(i).random((64, 64)).astype(np.float32) for i in range(3)]
    raw = model.zero_shot(images, ["Effusion", "Mass"])
    assert raw.calibrated == (False, False)
    np.testing.assert_allclose(raw.probabilities, sigmoid(raw.logits), rtol=1e-5)
    card = {"calibration": Calibration({"Effusion": FindingCalibration(2.0, 0.5)}).to_dict()}
    model.save_pretrained(tmp_path / "m", model_card=card)
    loaded = LRCLRModel.from_pretrained(tmp_path / "m")
    scores = loaded.zero_shot(images, ["Effusion", "Mass"])
    assert scores.calibrated == (True, False)
    np.testing.assert_allclose(scores.probabilities[:, 0], sigmoid(2.0 * scores.logits[:, 0] + 0.5), rtol=1e-5)
    explanation = loaded.explain(images[0], "", findings=["Effusion"])
    assert explanation.findings[0].calibrated
    assert explanation.findings[0].raw_probability == pytest.approx(float(sigmoid(scores.logits[0, 0])), rel=1e-5)

    broken = json.loads((tmp_path / "m" / "model_card.json").read_text())
    broken["calibration"]["findings"]["Effusion"] = {"slope": 1.0}
    (tmp_path / "m" / "model_card.json").write_text(json.dumps(broken))
    with pytest.raises(ModelLoadError, match="calibration"):
        LRCLRModel.from_pretrained(tmp_path / "m")


def test_platt_never_reverses_the_ranking():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.2).astype(float)
    backwards = -2.0 * labels + rng.normal(0, 1, 400)  # positives score lower: AUC well below 0.5
    slope, intercept = fit_platt(backwards, labels)
    assert slope == 0.0
    # A constant near the base rate is what is left.
    assert 1 / (1 + np.exp(-intercept)) == pytest.approx(labels.mean(), abs=0.03)
