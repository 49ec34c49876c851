"""Cross-validation: patient-grouped folds, out-of-fold files, and the command end to end on phantoms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from train.cli import main as train_main
from train.commands.cross_validate import fold_indices
from train.evaluation.cv_summary import wall_time
from train.evaluation.augmented_views import fixed_views
from train.evaluation.metrics import finding_auc
from train.evaluation.oof import OutOfFold, paired, summarize
from train.datasets.splits import patient_folds

TINY_MODEL = json.dumps(tiny_config().to_dict())
PHANTOMS = json.dumps({"kind": "phantoms", "n": 24, "size": 64})


def test_folds_group_patients_and_do_not_depend_on_other_patients():
    patients = [f"p{i // 3}" for i in range(60)]  # three images per patient
    folds = patient_folds(patients, 5, seed=0)
    assert set(folds) <= set(range(5)) and len(set(folds)) == 5
    for patient in set(patients):
        assert len({f for p, f in zip(patients, folds) if p == patient}) == 1
    # Adding patients leaves everyone else's fold alone.
    more = patient_folds(patients + ["new-a", "new-b"], 5, seed=0)
    assert more[:60] == folds
    assert patient_folds(patients, 5, seed=1) != folds
    with pytest.raises(ValueError):
        patient_folds(patients, 1)


def test_fold_indices_keep_test_images_out_of_training():
    folds = np.array([0, 1, 0, 2, 1, 2])
    train, test = fold_indices(folds, 1, n_extra=2)
    assert list(test) == [1, 4]
    assert train == [0, 2, 3, 5, 6, 7]  # other folds, then every extra-training item


def _oof(seed: int = 0, n: int = 40) -> OutOfFold:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 2))
    labels[0, 1] = -1  # unknown label: left out of that finding's AUC
    logits = labels + rng.normal(0, 1.0, size=(n, 2))
    return OutOfFold(("A", "B"), [f"img{i}" for i in range(n)], [f"p{i}" for i in range(n)],
                     np.arange(n) % 4, labels, logits, {"note": "synthetic"})


def test_out_of_fold_files_round_trip_and_summaries_match_the_metrics(tmp_path):
    oof = _oof()
    oof.save(tmp_path / "run")
    for source in (tmp_path / "run", tmp_path / "run" / "oof.csv"):
        back = OutOfFold.load(source)
        assert back.findings == oof.findings and back.image_ids == oof.image_ids
        np.testing.assert_array_equal(back.labels, oof.labels)
        np.testing.assert_allclose(back.logits, oof.logits, rtol=1e-5)
        np.testing.assert_array_equal(back.folds, oof.folds)
    summary = summarize(oof)
    expected = finding_auc("B", oof.labels[:, 1], oof.logits[:, 1])
    assert summary.findings[1].auc == pytest.approx(expected.auc)
    assert summary.findings[1].n_positive + summary.findings[1].n_negative == 39
    assert summary.macro.auc == pytest.approx(np.mean([f.auc for f in summary.findings]))
    assert set(summary.fold_macros) == {0, 1, 2, 3}


def test_paired_differences_align_images_and_refuse_other_labels():
    a = _oof()
    b = _oof()
    b.logits = -b.logits  # a worse model on the same images
    shuffled = b.aligned_to(a)
    order = np.random.default_rng(1).permutation(len(b.image_ids))
    b_shuffled = OutOfFold(b.findings, [b.image_ids[i] for i in order], [b.patient_ids[i] for i in order],
                           b.folds[order], b.labels[order], b.logits[order])
    differences = {d.finding: d for d in paired(a, b_shuffled)}
    assert differences["macro"].difference > 0.3 and differences["macro"].ci_low > 0
    np.testing.assert_allclose(shuffled.logits, b.logits)
    other = _oof(seed=5)
    with pytest.raises(ValueError, match="labels"):
        paired(a, other)


def _cv_arguments(out, *extra) -> list[str]:
    return ["cross-validate", "--set", f"model={TINY_MODEL}", "--set", f"dataset={PHANTOMS}",
            "--set", "max_steps=4", "--set", "batch_size=8", "--set", "warmup_steps=1",
            "--set", "checkpoint_every=4", "--set", "prompt_loss_weight=1", "--set", "label_target_mix=0.5",
            "--folds", "2", "--out", str(out), "--map-images", "2", *extra]


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "run"
    assert train_main(_cv_arguments(out, "--score-local-weights", "0", "--test-time-views", "3")) == 0
    return out


@pytest.mark.slow  # uses tiny_cv, a 22 s cross-validation run on 2 busy cores
def test_cross_validate_scores_every_image_once_with_its_fold_model(tiny_cv):
    out = tiny_cv
    oof = OutOfFold.load(out)
    assert len(oof.image_ids) == 24 and np.isfinite(oof.logits).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 24 and len(summary["training_seconds"]) == 2
    assert 0 <= summary["map_specificity"]["drawn"] <= 1
    assert "local-weight-0" in summary["macro_at_other_local_weights"]
    assert (out / "summary.md").read_text().startswith("# Cross-validation")
    # The out-of-fold scores are exactly what each exported fold model gives its test images.
    from train.datasets import build_dataset

    dataset = build_dataset(json.loads(PHANTOMS))
    with_views = OutOfFold.load(out / "test-time-views-3")
    for fold in (0, 1):
        model = LRCLRModel.from_pretrained(out / f"fold-{fold}" / "model")
        test = np.flatnonzero(oof.folds == fold)
        images = [dataset.sample(int(i)).pixels for i in test]
        scores = model.zero_shot(images, list(oof.findings))
        np.testing.assert_allclose(scores.logits, oof.logits[test], rtol=1e-3, atol=1e-3)
        assert not (out / f"fold-{fold}" / "run" / "checkpoints").exists()
        # With test-time views: the mean of the model's logits over the image and its first two views.
        expected = np.mean([model.zero_shot([v.apply(p) for p in images], list(oof.findings)).logits
                            for v in fixed_views(3)], axis=0)
        np.testing.assert_allclose(with_views.logits[test], expected, rtol=1e-3, atol=1e-3)
        assert not np.allclose(with_views.logits[test], oof.logits[test], atol=1e-4)
    assert with_views.meta["test_time_views"] == ["identity", "zoom in 5%", "zoom out 5%"]
    assert summary["test_time_views"]["test-time-views-3"]["macro_auc"] == pytest.approx(summarize(with_views).macro.auc)
    views_summary = summary["test_time_views"]["test-time-views-3"]
    assert 0 <= views_summary["ece_raw"] <= 1
    assert {d["finding"] for d in views_summary["paired_vs_plain_by_finding"]} == {*oof.findings, "macro"}
    assert "test-time views" in (out / "summary.md").read_text()
    # A rerun reads the finished folds back instead of training again, and still reports what the
    # folds cost when they ran.
    before = (out / "oof.csv").read_text()
    fold_walls = [json.loads((out / f"fold-{k}" / "result.json").read_text())["wall_seconds"] for k in (0, 1)]
    assert all(wall >= seconds > 0 for wall, seconds in zip(fold_walls, summary["training_seconds"]))
    assert summary["wall_seconds"] >= sum(fold_walls) and summary["folds_read_back"] == []
    assert train_main(_cv_arguments(out, "--score-local-weights", "0", "--test-time-views", "3")) == 0
    assert (out / "oof.csv").read_text() == before
    reread = json.loads((out / "summary.json").read_text())
    assert reread["folds_read_back"] == [0, 1] and reread["folds_without_wall_time"] == []
    assert reread["wall_seconds"] >= sum(fold_walls)
    assert "read back with their recorded wall time" in (out / "summary.md").read_text()
    # Folds scored without views cannot be read back as if they had been.
    with pytest.raises(SystemExit, match="without test-time-views-4"):
        train_main(_cv_arguments(out, "--test-time-views", "4"))


@pytest.mark.slow  # uses tiny_cv, a 22 s cross-validation run on 2 busy cores
def test_calibrate_writes_calibration_and_the_cv_evaluation_into_a_card(tiny_cv, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_cv / "fold-0" / "model", model_dir)
    figure = tmp_path / "reliability.png"
    assert train_main(["calibrate", "--cv", str(tiny_cv), "--model", str(model_dir), "--name", "LRCLR",
                       "--compare-cv", str(tiny_cv), "--compare-name", "itself", "--figure", str(figure),
                       "--out-json", str(tmp_path / "calibration.json")]) == 0
    assert figure.stat().st_size > 1000
    card = json.loads((model_dir / "model_card.json").read_text())
    evaluation = card["metrics"]["cv_seen"]
    assert evaluation["result"]["n_samples"] == 24 and evaluation["dataset"]["split"] == "out of fold (2 folds)"
    assert evaluation["command"].startswith("python -m train cross-validate")
    macro = next(d for d in evaluation["paired_differences"]["LRCLR - itself"] if d["finding"] == "macro")
    assert macro["difference"] == 0.0  # a run against itself differs by nothing
    report = json.loads((tmp_path / "calibration.json").read_text())
    assert 0 <= report["ece_calibrated_cross_fitted"] <= 1
    model = LRCLRModel.from_pretrained(model_dir)
    calibrated = set(card["calibration"]["findings"])
    assert calibrated and calibrated <= set(OutOfFold.load(tiny_cv).findings)
    scores = model.zero_shot([np.zeros((64, 64), np.float32)], sorted(calibrated))
    assert all(scores.calibrated)


@pytest.mark.slow  # uses tiny_cv, a 22 s cross-validation run on 2 busy cores
def test_a_partial_run_covers_only_the_folds_it_ran_and_says_so(tiny_cv, tmp_path):
    import shutil

    out = tmp_path / "partial"
    shutil.copytree(tiny_cv, out)  # fold 0 is read back, not retrained
    assert train_main(_cv_arguments(out, "--run-folds", "1")) == 0
    full, partial = OutOfFold.load(tiny_cv), OutOfFold.load(out)
    assert set(partial.folds) == {0} and partial.image_ids == [i for i, f in zip(full.image_ids, full.folds) if f == 0]
    np.testing.assert_allclose(partial.logits, full.logits[full.folds == 0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds_run"] == [0] and "Partial run" in (out / "summary.md").read_text()
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_cv / "fold-0" / "model", model_dir)
    assert train_main(["calibrate", "--cv", str(out), "--model", str(model_dir), "--compare-cv", str(tiny_cv)]) == 0
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["metrics"]["cv_seen"]["title"].startswith("folds 0 of a 2-fold cross-validation")


def test_wall_time_counts_read_back_folds_and_names_those_that_recorded_none():
    # Fold 0 recorded its wall time; fold 1 is from a run made before folds recorded one.
    wall = wall_time(12.0, [{"fold": 0, "wall_seconds": 900.0}, {"fold": 1, "training_seconds": 800.0}])
    assert wall == {"seconds": 912.0, "folds_read_back": [0, 1], "folds_not_counted": [1]}


def test_cross_validate_refuses_a_start_model_that_saw_every_fold(tmp_path):
    with pytest.raises(SystemExit, match="init-from-cv"):
        train_main(["cross-validate", "--set", f"model={TINY_MODEL}", "--set", f"dataset={PHANTOMS}",
                    "--set", f"init_from={tmp_path}", "--out", str(tmp_path / "cv")])


def test_map_specificity_is_one_for_identical_maps_and_low_for_unrelated_ones():
    from lrclr.trust.map_checks import mean_pairwise_correlation

    rng = np.random.default_rng(0)
    base = rng.random((5, 5))
    assert mean_pairwise_correlation([base, base * 2 + 1, base]) == pytest.approx(1.0)
    unrelated = [rng.random((10, 10)) for _ in range(8)]
    assert abs(mean_pairwise_correlation(unrelated)) < 0.1
    assert mean_pairwise_correlation([base, np.ones((5, 5))]) == 1.0  # a flat map tells nothing
    # Only content cells count: identical padding must not make maps look alike.
    a, b = rng.random((4, 4)), rng.random((4, 4))
    a[0], b[0] = 100.0, 100.0
    valid = np.ones((4, 4), bool)
    valid[0] = False
    assert mean_pairwise_correlation([a, b]) > 0.9 > mean_pairwise_correlation([a, b], valid)


def test_a_shared_cache_is_reused_for_the_same_frozen_weights_and_rebuilt_for_others():
    import torch

    from train.datasets import build_dataset
    from train.training.feature_cache import SharedCache

    dataset = build_dataset({"kind": "phantoms", "n": 6, "size": 64})
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config(), pretrained_towers=False).eval()
    shared = SharedCache(dataset)
    frozen = [model.image_tower, model.text_tower]
    first = shared.view([0, 1, 2], model, torch.device("cpu"), 1, 0, frozen, None, False)
    second = shared.view([3, 4], model, torch.device("cpu"), 1, 0, frozen, None, False)
    assert shared.builds == 1 and first.cache is second.cache and len(second) == 2
    batch = second.batch([1], 0)  # local index 1 of [3, 4]: the dataset's item 4
    assert batch.tokens.input_ids.shape[0] == 1
    assert torch.equal(batch.image_grid[0].half(), shared.cache.grids[0][4])
    with torch.no_grad():
        model.image_tower.net[0].weight.add_(1.0)  # other frozen weights: the cache must not be reused
    shared.view([0], model, torch.device("cpu"), 1, 0, frozen, None, False)
    assert shared.builds == 2
