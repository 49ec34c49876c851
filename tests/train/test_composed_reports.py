"""Composed reports: a real-sentence report per NIH image that re-labels to exactly its findings."""

from __future__ import annotations

import pytest

from train.synthetic.composed_reports import (
    BankSentence, ComposedReport, SentenceBank, allowed_normal, finding_of, read_nih_labels, restates,
)
from lrclr.reports.labeler import NIH_FINDINGS, POSITIVE, label_report
from tests.support.paths import require_shared


def _sentence(text, positives=(), denied=(), scope="specific"):
    return BankSentence("R1", 0, text, frozenset(positives), frozenset(denied), "", scope)


def test_finding_sentence_must_state_exactly_one_finding():
    assert finding_of(_sentence("Small left effusion.", {"Effusion"})) == "Effusion"
    assert finding_of(_sentence("Right nodule.", {"Nodule", "Lung Lesion"})) == "Nodule"
    assert finding_of(_sentence("Effusion and edema.", {"Effusion", "Edema", "Lung Opacity"})) is None
    assert finding_of(_sentence("Effusion, no pneumothorax.", {"Effusion"}, {"Pneumothorax"})) is None


def test_normal_sentences_never_deny_what_the_image_has():
    no_effusion = _sentence("No pleural effusion.", denied={"Effusion"})
    assert allowed_normal(no_effusion, frozenset({"Cardiomegaly"}))
    assert not allowed_normal(no_effusion, frozenset({"Effusion"}))
    no_opacity = _sentence("No focal airspace opacity.", denied={"Lung Opacity"})
    assert not allowed_normal(no_opacity, frozenset({"Consolidation"}))  # implied parent
    clear = _sentence("The lungs are clear.", scope="lungs")
    assert allowed_normal(clear, frozenset({"Cardiomegaly"}))
    assert not allowed_normal(clear, frozenset({"Nodule"}))
    overall = _sentence("No acute cardiopulmonary disease.", scope="global")
    assert allowed_normal(overall, frozenset()) and not allowed_normal(overall, frozenset({"Hernia"}))


def test_restates_checks_positives_and_implied_parents():
    assert restates("Small right pleural effusion. Heart size is normal.", ["Effusion"])
    assert not restates("Small right pleural effusion. No pneumothorax.", ["Pneumothorax"])
    assert restates("The lungs are clear.", [])


class _Report:
    def __init__(self, report_id, text):
        self.report_id, self._text = report_id, text

    def sentences(self):
        from lrclr.reports.text import split_sentences
        return split_sentences(self._text)


def _tiny_bank():
    reports = [
        _Report("A1", "Heart size is normal. No pleural effusion or pneumothorax. The lungs are clear."),
        _Report("A2", "Small left pleural effusion. No focal consolidation. No pulmonary edema."),
        _Report("A3", "Moderate cardiomegaly. No pneumothorax. No acute cardiopulmonary disease."),
    ]
    return SentenceBank.from_reports(reports)


def test_compose_is_deterministic_and_records_provenance():
    bank = _tiny_bank()
    first = bank.compose("img1.png", ["Effusion", "Cardiomegaly"], seed=3)
    again = bank.compose("img1.png", ["Cardiomegaly", "Effusion"], seed=3)
    assert isinstance(first, ComposedReport) and first == again
    assert first.complete and first.labels == ("Cardiomegaly", "Effusion")
    roles = [s.role for s in first.sentences]
    assert roles[:2] == ["Cardiomegaly", "Effusion"] and set(roles[2:]) == {"normal"}
    assert all(s.report_id.startswith("A") and s.sentence_index >= 0 for s in first.sentences)
    assert "No pleural effusion" not in first.text and "Heart size is normal" not in first.text
    assert restates(first.text, first.labels)


def test_missing_findings_are_reported_not_dropped():
    report = _tiny_bank().compose("img2.png", ["Hernia"], seed=0)
    assert not report.complete and report.missing == ("Hernia",)


def test_no_finding_gives_only_normal_sentences():
    report = _tiny_bank().compose("img3.png", ["No Finding"], seed=0)
    assert report.complete and report.labels == ()
    assert {s.role for s in report.sentences} == {"normal"}
    assert label_report(report.text).labels.get("No Finding") == POSITIVE


@pytest.fixture(scope="module")
def real_bank():
    from lrclr.reports.text import load_openi_reports
    return SentenceBank.from_reports(load_openi_reports(require_shared("openi-reports/NLMCXR_reports.tgz")))


@pytest.mark.shared_data
def test_every_nih_image_gets_a_report_that_relabels_to_its_findings(real_bank):
    rows = read_nih_labels(require_shared("nih-cxr14-sample/labels.csv"))
    assert len(rows) == 421
    incomplete = []
    for image, findings in rows:
        report = real_bank.compose(image, findings, seed=0)
        if not report.complete:
            incomplete.append((image, report.missing))
            continue
        labels = label_report(report.text).labels
        positives = {name for name, status in labels.items() if status == POSITIVE}
        assert positives & set(NIH_FINDINGS) == set(findings), (image, report.text)
        assert restates(report.text, findings), (image, report.text)
        assert report.sentences and all(s.report_id.startswith("CXR") for s in report.sentences)
    assert not incomplete, incomplete


@pytest.mark.shared_data
def test_real_composition_is_seeded(real_bank):
    a = real_bank.compose("00000075_000.png", ["Cardiomegaly"], seed=0)
    assert a == real_bank.compose("00000075_000.png", ["Cardiomegaly"], seed=0)
    others = {real_bank.compose("00000075_000.png", ["Cardiomegaly"], seed=s).text for s in range(1, 6)}
    assert len(others - {a.text}) >= 1
