"""The Model page's tables from hand-made model cards (lrclr/trust/card_tables.py, lrclr/viz.roc_figure)."""

import json
import math

from lrclr.display import figures as viz
from lrclr.trust.card_tables import (auc_frame, evaluations, macro_summaries, paired_intervals, read_cards,
                               side_table, training_data_summary)

DATASET = {"spec": {"kind": "nih"}, "split": "test", "n_samples": 4}


def result(regions: bool, auc: float, low: float, high: float) -> dict:
    return {"uses_regions": regions,
            "findings": [{"finding": "Effusion", "auc": auc, "ci_low": low, "ci_high": high,
                          "n_positive": 2, "n_negative": 2},
                         {"finding": "Hernia", "auc": float("nan"), "n_positive": 0, "n_negative": 4}],
            "macro": {"auc": auc, "ci_low": low, "ci_high": high},
            "roc": {"Effusion": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1]}},
            "retrieval": [{"direction": "image->report", "n": 4, "recall": {"1": 0.25, "5": 1.0}}]}


def card(model_id: str, regions: bool, auc: float, low: float, high: float, **evaluation) -> dict:
    entry = {"dataset": DATASET, "result": result(regions, auc, low, high), **evaluation}
    return {"model_id": model_id, "metrics": {"nih_test": entry}}


LRCLR = card("lr", True, 0.75, 0.5, 1.0, name="LRCLR", paired_differences={
    "LRCLR - baseline": [{"finding": "Effusion", "ci_low": -0.1, "ci_high": 0.3},
                         {"finding": "macro", "ci_low": -0.2, "ci_high": 0.4}]})
BASELINE = card("base", False, 0.5, 0.25, 0.75, name="baseline")


def test_evaluations_pair_models_scored_on_the_same_data_only():
    elsewhere = card("other", False, 0.9, 0.8, 1.0)
    elsewhere["metrics"]["nih_test"]["dataset"] = {**DATASET, "split": "val"}
    found = evaluations(LRCLR, [LRCLR, BASELINE, elsewhere])
    assert [label for label, _ in found["nih_test"]] == ["lr (LRCLR)", "base (baseline)"]
    assert macro_summaries(found) == [
        "Macro AUC, nih_test: lr (LRCLR) 0.750 [0.500, 1.000]; base (baseline) 0.500 [0.250, 0.750] (0.5 = chance)."]
    # The same data scored again (another pointing tolerance) shares the line; other numbers do not.
    again = {"nih_test": found["nih_test"], "nih_test_tol15": found["nih_test"],
             "val": [("lr (LRCLR)", result(True, 0.6, 0.4, 0.8))]}
    assert [line.split(":")[0] for line in macro_summaries(again)] == ["Macro AUC, nih_test, nih_test_tol15",
                                                                       "Macro AUC, val"]


def test_paired_intervals_flip_when_the_second_model_is_loaded():
    assert paired_intervals(LRCLR, BASELINE, "nih_test") == {"Effusion": (-0.1, 0.3), "Macro mean": (-0.2, 0.4)}
    # The baseline's card holds no pairs; the LRCLR card's pair read from the baseline's side is B - A.
    baseline_with_pairs = {**BASELINE, "metrics": {"nih_test": {**BASELINE["metrics"]["nih_test"],
                                                                "paired_differences": LRCLR["metrics"]["nih_test"]["paired_differences"]}}}
    assert paired_intervals(baseline_with_pairs, LRCLR, "nih_test") == {"Effusion": (-0.3, 0.1), "Macro mean": (-0.4, 0.2)}
    assert paired_intervals(BASELINE, LRCLR, "nih_test") == {}


def test_auc_frame_has_a_row_per_finding_and_the_difference():
    found = evaluations(LRCLR, [BASELINE])["nih_test"]
    frame = auc_frame(found, paired_intervals(LRCLR, BASELINE, "nih_test")).set_index("finding")
    assert frame.loc["Effusion", "AUC · lr (LRCLR)"] == 0.75
    assert frame.loc["Effusion", "95% CI · base (baseline)"] == "0.250 – 0.750"
    assert frame.loc["Macro mean", "AUC difference (lr (LRCLR) − base (baseline))"] == 0.25
    assert frame.loc["Macro mean", "95% CI of the difference (paired)"] == "-0.200 – 0.400"
    assert math.isnan(frame.loc["Hernia", "AUC · lr (LRCLR)"])  # NaN AUC stays missing, never a number
    assert frame.loc["Hernia", "95% CI · lr (LRCLR)"] == "—"


def test_side_table_puts_each_model_in_a_column():
    found = evaluations(LRCLR, [BASELINE])["nih_test"]
    table = side_table(found, "retrieval", ("direction", "n"), lambda r: sorted(r["recall"].items()))
    assert table.to_dict("records") == [
        {"direction": "image->report", "n": 4, "k": "1", "lr (LRCLR)": 0.25, "base (baseline)": 0.25},
        {"direction": "image->report", "n": 4, "k": "5", "lr (LRCLR)": 1.0, "base (baseline)": 1.0}]


def test_roc_figure_uses_the_stored_points_and_escapes_labels():
    found = [("<b>lr</b>", result(True, 0.75, 0.5, 1.0))]
    figure = viz.roc_figure(found, "Effusion")
    assert list(figure.data[0].x) == [0, 0.5, 1] and figure.data[0].name == "&lt;b&gt;lr&lt;/b&gt; · AUC 0.750"
    assert viz.roc_figure(found, "Hernia") is None  # no stored points: no curve is drawn


def test_read_cards_skips_a_broken_card(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model_card.json").write_text(json.dumps({"model_id": "base"}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model_card.json").write_text("{not json")
    assert read_cards(tmp_path) == [{"model_id": "base"}]


def test_training_data_summary_names_training_only_extras():
    data = {"spec": {"kind": "nih", "reports": "composed"}, "split_sizes": {"train": 340}}
    extras = {"sizes": {"phantom:extra-train": 340}}
    assert training_data_summary(data, extras) == (
        "nih dataset (composed reports, 340 training images) + 340 phantom images (training only)")
