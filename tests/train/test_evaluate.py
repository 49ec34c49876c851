"""python -m train evaluate (train.evaluation): end to end on phantoms with tiny random models, and localization on a hand-made case."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from lrclr.model.config import tiny_config
from lrclr.model.explain import Explanation, RegionExplanation, WordExplanation, grid_to_image
from lrclr.model.lrclr_model import LRCLRModel
from train.synthetic.phantoms import FindingSpec, generate_phantom
from lrclr.model.letterbox import letterbox_geometry
from train import cli
from train.evaluation.localization import (
    ATTENTION, SIMILARITY, LocalizationCase, content_cells, localize_sample, peak_heatmap, summarise_localization,
    top_cell_boxes,
)
from train.evaluation.model_evaluation import EvaluationResult, evaluate_model, paired_differences
from train.evaluation.report import compare
from train.datasets.sample import Sample

FINDINGS = ("Effusion", "Cardiomegaly")
# Per phantom: what it shows. Sizes alternate square / portrait so letterboxing is exercised.
DRAWN = ["Effusion", "Cardiomegaly", "Mass", "Effusion", "Cardiomegaly", (), "Effusion", "Mass"]


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(mask)
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))


def _phantom_samples() -> list[Sample]:
    samples = []
    for i, drawn in enumerate(DRAWN):
        specs = [FindingSpec(drawn)] if drawn else []
        phantom = generate_phantom(i, size=64 if i % 2 == 0 else (72, 60), findings=specs)
        labels = {f: int(f == drawn) for f in FINDINGS}
        sample = Sample(f"phantom-{i}", f"patient-{i}", phantom.image, phantom.report, labels, dict(phantom.masks))
        samples.append(sample)
    samples[2].labels["Effusion"] = -1  # uncertain: left out of the Effusion AUC
    del samples[5].labels["Cardiomegaly"]  # unlabelled: left out by default
    samples[5].report = ""  # no report: left out of retrieval
    # Sample 7 has boxes, not a mask (like NIH BBox_List): the mass's bounding box.
    samples[7].boxes = {"Mass": [_bbox(samples[7].masks.pop("Mass"))]}
    return samples


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return _phantom_samples()


@pytest.fixture(scope="module")
def results(samples) -> dict[str, EvaluationResult]:
    torch.manual_seed(0)
    lrclr, baseline = LRCLRModel(tiny_config()).eval(), LRCLRModel(tiny_config(use_regions=False)).eval()
    return {
        "LRCLR": evaluate_model(lrclr, samples, FINDINGS, batch_size=3, bootstrap=100),
        "baseline": evaluate_model(baseline, iter(samples), FINDINGS, batch_size=5, bootstrap=100),
    }


def test_auc_counts_and_ranges(results):
    for result in results.values():
        assert result.n_samples == 8
        effusion, cardiomegaly = result.findings
        # Effusion: 3 drawn; sample 2 (a mass) uncertain -> 3 positive, 4 negative, 1 uncertain.
        assert (effusion.n_positive, effusion.n_negative, effusion.n_uncertain) == (3, 4, 1)
        # Cardiomegaly: 2 drawn; sample 5 unlabelled (not counted anywhere) -> 2 positive, 5 negative.
        assert (cardiomegaly.n_positive, cardiomegaly.n_negative, cardiomegaly.n_uncertain) == (2, 5, 0)
        for item in result.findings:
            assert 0 <= item.ci_low <= item.auc <= item.ci_high <= 1
        assert result.macro.findings == FINDINGS
        assert result.macro.auc == pytest.approx(np.mean([f.auc for f in result.findings]))
        assert set(result.roc) == set(FINDINGS)
        assert result.roc["Effusion"]["fpr"][0] == 0 and result.roc["Effusion"]["tpr"][-1] == 1


def test_missing_label_as_negative(samples):
    torch.manual_seed(1)
    model = LRCLRModel(tiny_config(use_regions=False)).eval()
    result = evaluate_model(model, samples[4:6], FINDINGS, bootstrap=10, missing_as_negative=True)
    assert (result.findings[1].n_positive, result.findings[1].n_negative) == (1, 1)
    assert result.findings[0].auc != result.findings[0].auc  # no Effusion positive there: NaN


def test_retrieval_counts_only_samples_with_reports(results):
    for result in results.values():
        assert [r.direction for r in result.retrieval] == ["image->report", "report->image"]
        for item in result.retrieval:
            assert item.n == 7
            values = [item.recall[k] for k in (1, 5, 10)]
            assert all(0 <= v <= 1 for v in values) and values == sorted(values)
            assert item.recall[10] == 1.0  # 10 >= 7 candidates


def test_localization_kinds_and_counts(results):
    # Ground truth: Effusion x3, Cardiomegaly x2, Mass x2 (one from boxes) = 7 (image, finding) pairs.
    expected = {"Effusion": 3, "Cardiomegaly": 2, "Mass": 2, "all": 7}
    lrclr = {(s.finding, s.map_kind): s for s in results["LRCLR"].localization}
    baseline = {(s.finding, s.map_kind): s for s in results["baseline"].localization}
    assert set(lrclr) == {(f, k) for f in expected for k in (ATTENTION, SIMILARITY)}
    assert set(baseline) == {(f, SIMILARITY) for f in expected}
    for scores in (lrclr, baseline):
        for (finding, _), score in scores.items():
            assert score.n == expected[finding]
            assert 0 <= score.pointing_game <= 1 and 0 <= score.mean_iou <= 1


def test_compare_markdown_and_json_round_trip(results):
    comparison = compare(results, command="python -m train evaluate --model a --model b", dataset={"kind": "x"})
    markdown = comparison.markdown
    assert "| Finding | pos / neg | LRCLR | baseline |" in markdown
    assert "python -m train evaluate --model a --model b" in markdown
    assert "Macro mean" in markdown and "image->report" in markdown and ATTENTION in markdown
    text = json.dumps(comparison.data, allow_nan=False)  # strict JSON: no NaN
    data = json.loads(text)
    assert data["command"].startswith("python -m train evaluate") and set(data["models"]) == {"LRCLR", "baseline"}
    for name, result in results.items():
        assert EvaluationResult.from_dict(data["models"][name]).to_dict() == result.to_dict()


def test_paired_differences_first_model_minus_each_other(results):
    differences = paired_differences(results)
    assert list(differences) == ["LRCLR - baseline"]
    rows = {row.finding: row for row in differences["LRCLR - baseline"]}
    for item in results["LRCLR"].findings:  # the point estimates are the AUCs' differences
        other = next(f for f in results["baseline"].findings if f.finding == item.finding)
        assert rows[item.finding].difference == pytest.approx(item.auc - other.auc)
    assert rows["macro"].difference == pytest.approx(results["LRCLR"].macro.auc - results["baseline"].macro.auc)
    comparison = compare(results, differences=differences)
    assert "Paired AUC differences" in comparison.markdown and "| Finding | LRCLR - baseline |" in comparison.markdown
    saved = json.loads(json.dumps(comparison.data, allow_nan=False))["paired_differences"]["LRCLR - baseline"]
    assert saved[-1]["finding"] == "macro"
    assert paired_differences({"LRCLR": results["LRCLR"]}) == {}


# ---- localization on a hand-made case ---------------------------------------------------------------


@dataclass(frozen=True)
class _Case:
    letterbox: object


class _StubModel:
    """Returns a fixed explanation: the phrase's one word peaks on cell (1, 2) of a 4 x 4 grid."""

    def __init__(self, with_regions: bool):
        self.with_regions = with_regions

    def encode_case(self, pixels):
        height, width = pixels.shape
        return _Case(letterbox_geometry((width, height), 64))

    def explain(self, case, report, findings=()):
        similarity = np.zeros((4, 4), dtype=np.float32)
        similarity[1, 2], similarity[1, 3] = 1.0, 0.5
        regions = (
            RegionExplanation(1, 0.9, (3, 0), case.letterbox.cell_box(3, 0, (4, 4)), ()),
            RegionExplanation(2, 0.8, (1, 2), case.letterbox.cell_box(1, 2, (4, 4)), ()),
        )
        attention = (0.2, 0.8) if self.with_regions else None
        word = WordExplanation(0, report, 0, len(report), attention, similarity)
        return Explanation("stub", report, False, case.letterbox, (4, 4), (),
                           regions if self.with_regions else (), (word,))


def test_localize_sample_hand_computed():
    # 64 x 64 image, model input 64, grid 4 x 4: cell (1, 2) is rows 16-31, columns 32-47.
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:32, 32:48] = True
    sample = Sample("s", "p", np.zeros((64, 64), np.float32), "", {}, {"Effusion": mask})
    cases = {c.map_kind: c for c in localize_sample(_StubModel(True), sample, top_regions=1)}
    # Attention: region 2 (cell (1, 2)) gets 0.8 -> its box is the mask: hit, IoU 1.
    assert cases[ATTENTION].hit and cases[ATTENTION].iou == pytest.approx(1.0)
    assert cases[SIMILARITY].hit and cases[SIMILARITY].iou == pytest.approx(1.0)
    # Top 2 similarity cells: (1, 2) and (1, 3) -> 512 predicted pixels, 256 of them the mask: IoU 1/2.
    two = {c.map_kind: c for c in localize_sample(_StubModel(False), sample, top_regions=2)}
    assert set(two) == {SIMILARITY} and two[SIMILARITY].iou == pytest.approx(0.5)
    # A mask elsewhere (bottom-left cell): both maps miss, IoU 0.
    sample.masks["Effusion"] = np.roll(mask, (32, -32), axis=(0, 1))
    for case in localize_sample(_StubModel(True), sample, top_regions=1):
        assert not case.hit and case.iou == 0.0 and case.reachable  # a perfect map could have hit
    # A 2-px band between cell centres: no map on this grid can hit it, so the ceiling says so.
    sample.masks["Effusion"] = np.zeros((64, 64), dtype=bool)
    sample.masks["Effusion"][10:12, :] = True
    assert not any(case.reachable for case in localize_sample(_StubModel(True), sample, top_regions=1))


def test_top_cells_skip_letterbox_padding():
    # A 64 wide x 32 high image in a 64 input: rows 0 and 3 of a 4 x 4 grid are padding.
    letterbox = letterbox_geometry((64, 32), 64)
    grid_map = np.zeros((4, 4))
    grid_map[0, :] = 9.0  # padding row scores highest but must not be picked
    grid_map[2, 1] = 1.0
    content = content_cells(letterbox, (4, 4), 1)
    assert content[1:3].all() and not content[0].any() and not content[3].any()
    assert top_cell_boxes(grid_map, content, letterbox, 1) == [(16.0, 16.0, 32.0, 32.0)]  # row 2 -> y 16..32
    peak = peak_heatmap(grid_map, content, letterbox)  # (32, 64): the centre of that box
    assert peak.shape == (32, 64) and np.argwhere(peak).tolist() == [[24, 24]]


def test_peak_is_the_highest_cell_not_a_border_plateau():
    # Nearly flat map, interior cell (1, 1) highest. Bilinear upsampling (align_corners=False, x16)
    # would peak in the corner cell (3, 0): 0.25 is kept on its clamped margin, while (1, 1)'s
    # centre falls between pixels and reaches only 0.96875^2 * 0.26 = 0.244 next to zero neighbours.
    grid_map = np.zeros((4, 4))
    grid_map[1, 1], grid_map[3, 0] = 0.26, 0.25
    letterbox = letterbox_geometry((64, 64), 64)
    upsampled = grid_to_image(grid_map, letterbox)
    assert upsampled[60, 2] == pytest.approx(0.25) and upsampled.max() == pytest.approx(0.25)
    peak = peak_heatmap(grid_map, np.ones((4, 4), bool), letterbox)
    assert np.argwhere(peak).tolist() == [[24, 24]]  # centre of cell (1, 1): x, y 16..32
    grid_map[3, 0] = 0.26  # a tie between cells: both centres are peak pixels
    assert np.argwhere(peak_heatmap(grid_map, np.ones((4, 4), bool), letterbox)).tolist() == [[24, 24], [56, 8]]


def test_summarise_localization_pools_pairs():
    cases = [LocalizationCase("a", "Mass", SIMILARITY, True, 0.5), LocalizationCase("b", "Mass", SIMILARITY, False, 0.1),
             LocalizationCase("a", "Edema", SIMILARITY, True, 0.3)]
    scores = {(s.finding, s.map_kind): s for s in summarise_localization(cases)}
    assert scores[("Mass", SIMILARITY)].pointing_game == 0.5
    assert scores[("Mass", SIMILARITY)].mean_iou == pytest.approx(0.3)
    assert scores[("all", SIMILARITY)].n == 3 and scores[("all", SIMILARITY)].pointing_game == pytest.approx(2 / 3)
    assert scores[("all", SIMILARITY)].pointing_game_ceiling == 1.0  # the cases' default: reachable
    cases.append(LocalizationCase("c", "Edema", SIMILARITY, False, 0.0, reachable=False))
    assert {(s.finding, s.map_kind): s for s in summarise_localization(cases)}[("Edema", SIMILARITY)].pointing_game_ceiling == 0.5


# ---- the command ---------------------------------------------------------------------------------


def test_evaluate_command_writes_json_and_markdown(tmp_path, monkeypatch):
    torch.manual_seed(2)
    LRCLRModel(tiny_config()).save_pretrained(tmp_path / "lrclr")
    LRCLRModel(tiny_config(use_regions=False)).save_pretrained(tmp_path / "base")
    out_json, out_md = tmp_path / "eval.json", tmp_path / "eval.md"
    # Phantom dataset, all of it in the test split (fractions 0 0 1) so the split path runs.
    argv = ["evaluate", "--model", str(tmp_path / "lrclr"), "--model", str(tmp_path / "base"), "--name", "L",
            "--dataset", '{"kind": "phantom", "n": 4, "size": 64}', "--split", "test",
            "--split-fractions", "0", "0", "1", "--findings", "Effusion,Nodule", "Mass", "--bootstrap", "20",
            "--out-json", str(out_json), "--out-md", str(out_md), "--card-key", "unit_test"]
    monkeypatch.setattr(sys, "argv", ["train/__main__.py", *argv])
    assert cli.main(argv) == 0
    data = json.loads(out_json.read_text())
    assert set(data["models"]) == {"L", "base"}
    assert data["command"] == "python -m train " + shlex.join(argv)
    assert [f["finding"] for f in data["models"]["L"]["findings"]] == ["Effusion", "Nodule", "Mass"]
    assert data["models"]["base"]["n_samples"] == 4 and data["dataset"]["split"] == "test"
    markdown = out_md.read_text()
    assert data["command"] in markdown and "| Finding | pos / neg | L | base |" in markdown
    assert [d["finding"] for d in data["paired_differences"]["L - base"]] == ["Effusion", "Nodule", "Mass", "macro"]
    for folder, name in ((tmp_path / "lrclr", "L"), (tmp_path / "base", "base")):  # --card-key
        recorded = json.loads((folder / "model_card.json").read_text())["metrics"]["unit_test"]
        assert recorded["result"] == data["models"][name] and recorded["command"] == data["command"]
        assert recorded["name"] == name  # which side of each paired difference this model is
        assert recorded["paired_differences"] == {"L - base": data["paired_differences"]["L - base"]}
    assert LRCLRModel.from_pretrained(tmp_path / "base").model_card["metrics"]["unit_test"]["dataset"]["split"] == "test"


def test_evaluate_command_reports_user_errors(tmp_path, capsys):
    argv = ["evaluate", "--model", str(tmp_path / "missing"), "--dataset", '{"kind": "phantom", "n": 2, "size": 64}']
    assert cli.main(argv) == 2
    assert "missing" in capsys.readouterr().out
    assert cli.main(["evaluate", "--model", "m", "--dataset", '{"kind": "nope"}']) == 2
    assert cli.main(["evaluate", "--model", "m", "--dataset", str(tmp_path / "absent.json")]) == 2
    assert cli.main(["evaluate", "--model", "a", "--model", "a", "--dataset", "{}"]) == 2  # same name twice
