"""Trust on screen, library side: reliability from the card, deletion test, counterfactuals, input gate."""

from __future__ import annotations

import numpy as np
import pytest

from lrclr.model.calibration import Calibration, FindingCalibration, OperatingPoint
from lrclr.model.config import tiny_config
from lrclr.trust.counterfactual import negated, patient_left_share, probe_phrases
from lrclr.trust.faithfulness import blank_cells, deletion_test, top_cells
from lrclr.imaging.input_check import InputReference, check_input, image_reasons
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.trust.reliability import evidence_summary, finding_reliability


@pytest.fixture(scope="module")
def tiny():
    import torch

    torch.manual_seed(0)
    return LRCLRModel(tiny_config(attention_cosine_scale=10.0), pretrained_towers=False).eval()


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((64, 64)).astype(np.float32)


def _card() -> dict:
    finding = lambda name, auc, low, high: {"finding": name, "auc": auc, "ci_low": low, "ci_high": high, "n_positive": 30}
    return {
        "calibration": Calibration({"Effusion": FindingCalibration(1.0, 0.0, OperatingPoint(0.3, 0.8, 0.7))}).to_dict(),
        "metrics": {
            "cv_seen": {"dataset": {"split": "out of fold (5 folds)", "n_samples": 421, "spec": {"kind": "nih"}},
                        "result": {"findings": [finding("Effusion", 0.72, 0.64, 0.80), finding("Mass", 0.55, 0.47, 0.63)],
                                   "macro": {"auc": 0.6, "ci_low": 0.57, "ci_high": 0.63}}},
            "cv_held_out": {"result": {"findings": [finding("Pneumothorax", 0.58, 0.46, 0.69)],
                                       "macro": {"auc": 0.58, "ci_low": 0.5, "ci_high": 0.66,
                                                 "findings": ["Pneumothorax"]}}},
        },
    }


def test_reliability_reads_the_cards_evidence_per_finding():
    found = finding_reliability(_card(), ["Effusion", "Mass", "Pneumothorax", "rib fracture"])
    effusion, mass, pneumothorax, typed = (found[k] for k in ("Effusion", "Mass", "Pneumothorax", "rib fracture"))
    assert effusion.reliable and effusion.calibrated and effusion.threshold(0.5) == 0.3
    assert effusion.called_positive(0.31, 0.5) and not effusion.called_positive(0.29, 0.5)
    assert mass.validated and not mass.reliable and mass.label.startswith("not reliable")
    assert not mass.calibrated and mass.threshold(0.6) == 0.6  # no operating point: the fallback
    assert pneumothorax.zero_shot and not pneumothorax.reliable
    assert not typed.validated and typed.label == "not validated"
    summary = evidence_summary(_card())
    assert summary.macro_auc == 0.6 and summary.held_out_findings == ("Pneumothorax",)
    assert "421" in summary.description
    assert evidence_summary({}) is None


def test_deletion_test_blanks_the_maps_top_cells_and_random_ones(tiny):
    image = _image()
    case = tiny.encode_case(image)
    grid = case.features.grid
    valid = case.features.valid[0].numpy().reshape(grid)
    grid_map = np.arange(grid[0] * grid[1], dtype=np.float32).reshape(grid)  # the last cells are highest
    assert top_cells(grid_map, valid, 2) == [(grid[0] - 1, grid[1] - 1), (grid[0] - 1, grid[1] - 2)]
    result = deletion_test(tiny, image, grid_map, valid, case.letterbox, ["Effusion", "Mass"], k=2, repeats=3)
    assert result.k == 2 and result.repeats == 3 and len(result.findings[0].random_drops) == 3
    intact = tiny.zero_shot([image], ["Effusion", "Mass"]).probabilities[0]
    assert result.for_finding("Mass").score == pytest.approx(float(intact[1]), abs=1e-6)
    again = deletion_test(tiny, image, grid_map, valid, case.letterbox, ["Effusion", "Mass"], k=2, repeats=3)
    assert again == result  # seeded by the image: reproducible
    blanked = blank_cells(image, [(0, 0)], case.letterbox, grid, fill=0.25)
    cell = 64 // grid[0]
    assert np.all(blanked[:cell, :cell] == 0.25) and np.array_equal(blanked[cell:], image[cell:])


def test_counterfactual_edits_negate_and_mirror_the_phrase(tiny):
    assert negated("left pleural effusion") == "no left pleural effusion"
    assert negated("No left pleural effusion") == "left pleural effusion"
    case = tiny.encode_case(_image(1))
    probes = probe_phrases(tiny, case, "left pleural effusion")
    kinds = [e.kind for e in probes.edits]
    assert kinds == ["negated", "sides swapped"]
    swapped = probes.edits[1]
    assert swapped.probe.phrase == "right pleural effusion"
    assert swapped.similarity_change == pytest.approx(swapped.probe.similarity - probes.original.similarity)
    assert -1 <= swapped.map_correlation <= 1
    assert [e.kind for e in probe_phrases(tiny, case, "cardiomegaly").edits] == ["negated"]  # no side to swap
    data = probes.to_dict()
    assert data["edits"][0]["phrase"] == "no left pleural effusion"


def test_patient_left_is_the_images_right():
    valid = np.ones((2, 4), bool)
    right_only = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    assert patient_left_share(right_only, valid) == 1.0
    assert patient_left_share(right_only[:, ::-1], valid) == 0.0
    assert patient_left_share(np.ones((2, 4)), valid) == 0.5


def test_the_gate_reads_the_image_and_the_dicom_header():
    rng = np.random.default_rng(0)
    chest_like = np.clip(rng.normal(0.5, 0.15, (256, 240)), 0, 1)
    assert image_reasons(chest_like) == []
    assert "blank" in image_reasons(np.full((64, 64), 0.4))[0]
    text = np.ones((256, 256))
    text[::8, :] = 0
    assert "text" in image_reasons(text)[0]
    assert any("colour" in r for r in image_reasons(chest_like, colourfulness=0.3))
    assert any("cropped" in r for r in image_reasons(chest_like[:40]))
    assert any("CT" in r for r in image_reasons(chest_like, {"Modality": "CT"}))
    assert any("KNEE" in r for r in image_reasons(chest_like, {"Modality": "DX", "Body Part Examined": "KNEE"}))
    assert image_reasons(chest_like, {"Modality": "CR", "Body Part Examined": "CHEST"}) == []


def test_the_reference_distance_separates_far_embeddings_and_survives_the_card():
    from train.commands.input_reference import fit_reference

    rng = np.random.default_rng(0)
    training = rng.normal(0, 1, (400, 8)) * np.array([3, 2, 1, 1, 0.5, 0.5, 0.2, 0.2])
    reference = fit_reference(training, components=4, percentile=99.0, fitted_on="synthetic")
    distances = np.array([reference.distance(v) for v in training])
    assert np.mean(distances <= reference.threshold) == pytest.approx(0.99, abs=0.005)
    assert reference.distance(np.full(8, 10.0)) > 3 * reference.threshold
    again = InputReference.from_card({"input_reference": reference.to_dict()})
    assert again.distance(training[0]) == pytest.approx(reference.distance(training[0]), rel=1e-4)
    check = check_input(again, np.clip(rng.normal(0.5, 0.15, (64, 64)), 0, 1), np.full(8, 10.0))
    assert not check.passed and "far from every image" in check.reasons[0]
    assert check_input(None, np.clip(rng.normal(0.5, 0.15, (64, 64)), 0, 1), np.zeros(8)).passed


def test_the_orientation_check_tells_upright_films_from_turned_ones_and_survives_the_card():
    """Fitted on phantom films against their own rotations; judged on phantoms it never saw."""
    from train.commands.input_reference import fit_orientation, orientation_rows
    from train.synthetic.phantoms import generate_phantom

    films = [generate_phantom(seed, size=96).image for seed in range(48)]
    check = fit_orientation(orientation_rows(films[:36]), quantile=1.0, l2=1e-3)
    unseen = orientation_rows(films[36:])
    scores = unseen @ check.weights + check.bias  # (12, 4): upright, 90, 180, 270 degrees
    assert np.mean(scores[:, 0] >= check.threshold) >= 11 / 12
    assert np.mean(scores[:, 1:] < check.threshold) >= 35 / 36
    card = {"input_reference": {"mean": [0.0], "components": [[1.0]], "variances": [1.0], "residual_variance": 1.0,
                                "threshold": 9.0, "orientation": check.to_dict()}}
    loaded = InputReference.from_card(card)
    assert loaded.orientation.score(films[40]) == pytest.approx(check.score(films[40]), abs=1e-3)
    turned = check_input(loaded, np.rot90(films[40]), np.zeros(1))
    assert not turned.passed and "turned" in turned.reasons[0]
    del card["input_reference"]["orientation"]  # a card written before the check existed
    assert InputReference.from_card(card).orientation is None
    assert check_input(InputReference.from_card(card), np.rot90(films[40]), np.zeros(1)).passed


def test_the_tour_quotes_the_cards_measurements_and_admits_missing_ones():
    from lrclr.trust.tour import tour_steps

    card = _card()
    card["metrics"]["cv_seen"]["map_specificity"] = {"drawn": 0.97}
    card["metrics"]["phantoms_tol15"] = {"result": {"localization": [
        {"finding": "all", "map_kind": "region_attention", "pointing_game": 0.9, "pointing_game_chance": 0.2}]}}
    steps = {s.title: s.text for s in tour_steps(card)}
    assert "AUC is" not in steps["Scores, and how far to trust them"]  # Cardiomegaly is not in this card
    assert "hardly depend on the words" in steps["Where a report word looks"] and "0.97" in steps["Where a report word looks"]
    assert "90% of cases, against 20%" in steps["Model map against ground truth"]
    assert "0.58" in steps["How good is the model?"]  # the held-out (genuinely zero-shot) macro
    card["metrics"]["cv_seen"]["result"]["findings"].append(
        {"finding": "Cardiomegaly", "auc": 0.7, "ci_low": 0.6, "ci_high": 0.8, "n_positive": 37})
    card["metrics"]["cv_seen"]["map_specificity"] = {"drawn": 0.3}
    steps = {s.title: s.text for s in tour_steps(card)}
    assert "0.70 [0.60, 0.80]: **reliable**" in steps["Scores, and how far to trust them"]
    assert "correlate 0.30" in steps["Where a report word looks"]
    bare = {s.title: s.text for s in tour_steps({})}
    assert "no phantom localization measurement" in bare["Model map against ground truth"]


def test_a_model_trained_on_the_whole_nih_sample_has_seen_the_demo_images():
    from lrclr.trust.reliability import trained_on_whole_sample

    whole = {"training_data": {"spec": {"kind": "nih"}, "split_fractions": [1.0, 0.0, 0.0]}}
    split = {"training_data": {"spec": {"kind": "nih"}, "split_fractions": [0.8, 0.1, 0.1]}}
    assert trained_on_whole_sample(whole) and not trained_on_whole_sample(split)
    assert not trained_on_whole_sample({"training_data": {"spec": {"kind": "mimic"}, "split_fractions": [1.0]}})
    assert not trained_on_whole_sample({})


def test_the_cross_fitted_pass_rate_judges_each_image_without_its_own_fold():
    from train.commands.input_reference import GateSettings, cross_fitted_pass_rates, orientation_rows
    from train.datasets.sample import Sample
    from train.datasets.splits import patient_folds

    rng = np.random.default_rng(1)
    # Brighter towards the bottom and the left edge, as no turn of it is: orientation is never in doubt.
    ramp = np.add.outer(np.linspace(0.2, 0.8, 64), np.linspace(0.1, 0.0, 64))
    films = [np.clip(ramp + rng.normal(0, 0.05, (64, 64)), 0, 1).astype(np.float32) for _ in range(300)]
    samples = [Sample(f"i{k}", f"p{k}", film, "") for k, film in enumerate(films)]
    rows = {"films": orientation_rows(films)}
    settings = GateSettings(components=4, percentile=99.0)
    vectors = rng.normal(0, 1, (300, 8)) * np.array([3, 2, 1, 1, 0.5, 0.5, 0.2, 0.2])
    rates = cross_fitted_pass_rates({"films": samples}, {"films": vectors}, rows, settings)
    assert rates["films"]["n"] == 300 and 0.95 <= rates["films"]["rate"] < 1.0
    assert rates["films"]["turned_rate"] >= 0.99  # turned films of held-out patients
    # One fold's patients sit far from everyone else: a reference fitted on all images would take
    # them in, but each is judged by a reference fitted without its fold, so all of them fail.
    fold = np.array(patient_folds([s.patient_id for s in samples], 5))
    shifted = vectors.copy()
    shifted[fold == 0] += 40.0
    rates = cross_fitted_pass_rates({"films": samples}, {"films": shifted}, rows, settings)
    assert rates["films"]["passed"] <= 300 - int((fold == 0).sum())
