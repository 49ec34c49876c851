"""Rule-based finding labeler: negation, uncertainty, laterality/zone, spans, XXXX, CLI, MeSH check."""

from __future__ import annotations

import csv
import gc
import io
import random

import pytest

from tests.support.paths import require_shared
from tests.support.timing import growth_ratio
from lrclr.reports.labeler import (
    ALL_FINDINGS,
    CHEXPERT_OBSERVATIONS,
    NIH_FINDINGS,
    NO_FINDING,
    label_report,
    label_sentence,
)
from lrclr.reports.text import split_sentences


def status(text: str, finding: str):
    return label_report(text).labels.get(finding)


def test_finding_names():
    assert NIH_FINDINGS[:3] == ("Atelectasis", "Cardiomegaly", "Effusion")
    assert "Pleural_Thickening" in NIH_FINDINGS and len(NIH_FINDINGS) == 14
    assert {"Lung Opacity", "Support Devices", NO_FINDING} <= set(CHEXPERT_OBSERVATIONS)
    assert ALL_FINDINGS == NIH_FINDINGS + CHEXPERT_OBSERVATIONS


@pytest.mark.parametrize("text, finding, expected", [
    ("Small left pleural effusion.", "Effusion", 1),
    ("No pleural effusion or pneumothorax.", "Effusion", 0),
    ("No pleural effusion or pneumothorax.", "Pneumothorax", 0),
    ("There is no evidence of focal consolidation, pleural effusion, or pneumothorax.", "Pneumothorax", 0),
    ("The lungs are clear without effusion.", "Effusion", 0),
    ("Negative for pneumothorax.", "Pneumothorax", 0),
    ("Lungs are clear of infiltrate.", "Infiltration", 0),
    ("Pleural effusion is not seen.", "Effusion", 0),
    ("The effusions have resolved.", "Effusion", 0),
    ("Resolved right lower lobe pneumonia.", "Pneumonia", 0),
    ("Interval removal of the right chest tube.", "Support Devices", 0),
    ("Heart is not enlarged.", "Cardiomegaly", 0),
    ("Heart size is normal.", "Cardiomegaly", 0),
    ("Lungs are free of infiltrate and there is no pleural effusion.", "Effusion", 0),
    # pseudo-negations: a negation word that does not deny the finding
    ("No change in the small left effusion.", "Effusion", 1),
    ("Cardiomegaly, not significantly changed.", "Cardiomegaly", 1),
    ("Partially resolved left lower lobe pneumonia.", "Pneumonia", 1),
    # scope ends at clause boundaries
    ("No pneumothorax, but there is a small right effusion.", "Effusion", 1),
    ("No pneumothorax; small right effusion.", "Effusion", 1),
    ("No focal consolidation and there is mild cardiomegaly.", "Cardiomegaly", 1),
    ("No focal opacity to suggest pneumonia.", "Pneumonia", 0),
])
def test_negation(text, finding, expected):
    assert status(text, finding) == expected


@pytest.mark.parametrize("text, finding", [
    ("Pneumonia cannot be excluded.", "Pneumonia"),
    ("Cannot exclude a small pleural effusion.", "Effusion"),
    ("Early pneumonia is not excluded.", "Pneumonia"),
    ("Opacity may represent atelectasis.", "Atelectasis"),
    ("Possible small left effusion.", "Effusion"),
    ("Questionable nodule in the right upper lobe.", "Nodule"),
    ("Findings suspicious for pulmonary edema.", "Edema"),
    ("Left basilar atelectasis versus pneumonia.", "Pneumonia"),
    ("Small pneumothorax?", "Pneumothorax"),
    ("Nodule is not well seen on this study.", "Nodule"),
])
def test_uncertainty(text, finding):
    assert status(text, finding) == -1


def test_report_aggregation_positive_beats_uncertain_beats_negative():
    assert status("No right effusion. Small left effusion.", "Effusion") == 1
    assert status("No definite effusion. Tiny effusion cannot be excluded.", "Effusion") == -1
    assert status("No effusion.", "Effusion") == 0
    assert status("Heart is normal.", "Pneumothorax") is None


def test_synonyms():
    assert status("Blunting of the left costophrenic angle.", "Effusion") == 1
    assert status("Enlarged cardiac silhouette.", "Cardiomegaly") == 1
    assert status("The cardiac silhouette is mildly enlarged.", "Cardiomegaly") == 1
    assert status("Central pulmonary vascular congestion.", "Edema") == 1
    assert status("Small hiatal hernia.", "Hernia") == 1
    assert status("Right IJ catheter tip in the SVC.", "Support Devices") == 1
    # look-alikes that must not trigger
    assert status("Small pericardial effusion.", "Effusion") is None
    assert status("Subcutaneous emphysema in the neck.", "Emphysema") is None
    assert status("Heart size is upper limits of normal.", "Cardiomegaly") == 0


def test_laterality_and_zone():
    report = label_report("Possible small right basilar atelectasis, no pneumothorax. Left upper lobe nodule.")
    by_finding = {m.finding: m for m in report.mentions}
    assert (by_finding["Atelectasis"].laterality, by_finding["Atelectasis"].zone) == ("right", "base")
    assert (by_finding["Pneumothorax"].laterality, by_finding["Pneumothorax"].zone) == ("", "")
    assert (by_finding["Nodule"].laterality, by_finding["Nodule"].zone) == ("left", "upper")
    bilateral = label_report("Bilateral pleural effusions.").mentions_of("Effusion")[0]
    assert bilateral.laterality == "bilateral"
    assert label_report("Retrocardiac opacity.").mentions_of("Lung Opacity")[0].zone == "retrocardiac"


def test_trigger_and_cue_spans_reproduce_substrings():
    text = "FINDINGS: Heart size is mildly enlarged. IMPRESSION: No pleural effusion. Pneumonia cannot be excluded."
    report = label_report(text)
    cardio = report.mentions_of("Cardiomegaly")[0]
    assert [text[s.start:s.end] for s in cardio.triggers] == ["Heart", "enlarged"]
    effusion = report.mentions_of("Effusion")[0]
    assert text[effusion.triggers[0].start:effusion.triggers[0].end] == "effusion"
    assert text[effusion.cue.start:effusion.cue.end] == "No" and effusion.cue_kind == "negation"
    pneumonia = report.mentions_of("Pneumonia")[0]
    assert text[pneumonia.cue.start:pneumonia.cue.end] == "cannot be excluded"
    assert [s.sentence.section for s in report.sentences] == ["findings", "impression", "impression"]


def test_label_sentence_offsets():
    text = "Lungs clear. Small left effusion."
    second = split_sentences(text)[1]
    mention = label_sentence(second).mentions[0]
    assert text[mention.triggers[0].start:mention.triggers[0].end] == "effusion"
    local = label_sentence("Small left effusion.").mentions[0]
    assert local.triggers[0].start == len("Small left ")


def test_deidentification_marks_never_trigger():
    # "XXXX" stands for de-identified words; whatever they were, they are not read as findings.
    report = label_report("XXXX XXXX. Clear lung XXXX. XXXX XXXX are intact. No XXXX of effusion.")
    assert {k: v for k, v in report.labels.items() if v == 1} == {NO_FINDING: 1}
    assert status("There are no XXXX of a pleural effusion.", "Effusion") == 0
    assert status("Right chest XXXX tip in the SVC.", "Support Devices") == 1  # the tip, not the mark


def test_no_finding():
    assert status("Heart size normal. Lungs are clear. No effusion.", NO_FINDING) == 1
    assert status("Small left effusion.", NO_FINDING) is None
    assert status("Possible small left effusion.", NO_FINDING) is None
    assert status("Left PICC line. Lungs clear.", NO_FINDING) == 1  # devices are not disease


def test_label_reports_cli_on_text_folder(tmp_path):
    from train.commands.label_reports import read_reports, write_labels

    (tmp_path / "r1.txt").write_text("FINDINGS: Small left pleural effusion. No pneumothorax.\n"
                                     "IMPRESSION: Possible pneumonia.\n")
    buffer = io.StringIO()
    write_labels(read_reports(tmp_path), buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert list(rows[0])[:2] == ["report_id", "Atelectasis"] and len(rows[0]) == 1 + len(ALL_FINDINGS)
    row = rows[0]
    assert (row["report_id"], row["Effusion"], row["Pneumothorax"], row["Pneumonia"], row["Edema"]) == \
        ("r1", "1", "0", "-1", "")


@pytest.mark.shared_data
def test_mesh_check_on_real_openi():
    """The external check: macro F1 against OpenI MeSH major terms over all 3,955 reports."""
    from train.commands.labeler_check import evaluate, macro_f1
    from lrclr.reports.text import load_openi_reports

    reports = load_openi_reports(require_shared("openi-reports/NLMCXR_reports.tgz"))
    assert len(reports) == 3955
    result = evaluate(reports)
    assert macro_f1(result["labeler"]) >= 0.85
    assert macro_f1(result["labeler"]) > macro_f1(result["baseline"])


_PHRASES = (
    "heart size is mildly enlarged", "small left pleural effusion", "no pneumothorax",
    "there is no focal consolidation", "possible right lower lobe nodule", "lungs are clear",
    "stable mediastinal contours", "mild pulmonary edema cannot be excluded", "no acute osseous abnormality",
    "patchy bibasilar atelectasis", "the cardiac silhouette is normal", "interval removal of the chest tube",
)


def _single_sentence_report(characters: int, seed: int) -> str:
    """A report with no sentence end at all: random findings joined by spaces."""
    rng = random.Random(seed)
    parts, length = [], 0
    while length < characters:
        parts.append(rng.choice(_PHRASES))
        length += len(parts[-1]) + 1
    return " ".join(parts)[:characters]


def test_a_report_without_sentence_ends_costs_time_linear_in_its_length():
    """A line-per-finding report without periods is one sentence; before, each mention rescanned
    the whole sentence for clause edges, cues and the other mentions (40 kB took a minute)."""
    ratio = growth_ratio(label_report, lambda seed: _single_sentence_report(40_000, seed),
                         lambda seed: _single_sentence_report(400_000, seed + 100))
    assert ratio < 25


def test_a_long_sentence_is_labelled_clause_by_clause_with_the_same_result():
    """Pieces are cut at clause edges, where cue scopes stop anyway: the long sentence's mentions
    are those of its clauses labelled one by one."""
    clauses = [f"there is {phrase}" for phrase in _PHRASES] * 20
    text = "; ".join(clauses)
    whole = label_sentence(text).mentions
    offset, one_by_one = 0, []
    for clause in clauses:
        one_by_one += [(m.finding, m.status, m.laterality, m.zone, m.triggers[0].start + offset)
                       for m in label_sentence(clause).mentions]
        offset += len(clause) + 2
    assert len(text) > 4_000
    assert [(m.finding, m.status, m.laterality, m.zone, m.triggers[0].start) for m in whole] == one_by_one


def test_spans_stay_on_the_report_when_a_letter_lower_cases_to_two():
    """"İ" lower-cases to "i" plus a combining dot: without care every span after it moved."""
    text = "İİİ small left effusion. XXXX İstanbul: no pneumothorax"
    labels = label_report(text)
    spans = {m.finding: text[m.triggers[0].start:m.triggers[0].end] for m in labels.mentions}
    assert spans == {"Effusion": "effusion", "Pneumothorax": "pneumothorax"}
    assert labels.labels["Effusion"] == 1 and labels.labels["Pneumothorax"] == 0


def test_labelling_leaves_no_reference_cycles_and_gives_the_garbage_collector_back():
    """``label_report`` pauses the cyclic garbage collector (a full collection walks the app's whole
    heap, half of a 2 MB report's time in the app). That is safe only while labelling makes no reference
    cycles, which a collection afterwards would find; and the collector must come back as it was."""
    text = _single_sentence_report(20_000, seed=3) + ". " + ". ".join(_PHRASES)
    gc.collect()
    gc.disable()
    try:
        labels = label_report(text + " the end")  # a text never labelled before: nothing cached
        left_in_cycles = gc.collect()
    finally:
        gc.enable()
    assert labels.mentions and left_in_cycles == 0
    assert gc.isenabled()  # on before, on after
    label_report("No pneumothorax.")
    assert gc.isenabled()
    gc.disable()
    try:
        label_report("Small left effusion.")
        assert not gc.isenabled()  # a caller that switched it off keeps it off
    finally:
        gc.enable()
