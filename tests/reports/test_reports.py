"""Report parsing: OpenI XML, sections, sentences, words; spans must reproduce substrings."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.support.paths import require_shared
from tests.support.timing import growth_ratio
from lrclr.reports.text import (
    UNHEADED,
    OpenIReport,
    ReportReadError,
    is_deidentified,
    load_openi_reports,
    parse_openi_xml,
    split_sections,
    split_sentences,
    words,
)

SAMPLE_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <uId id="CXR7"/>
  <MedlineCitation><Article><Abstract>
    <AbstractText Label="COMPARISON">Chest radiograph on XXXX.</AbstractText>
    <AbstractText Label="INDICATION">XXXX yr old with cough.</AbstractText>
    <AbstractText Label="FINDINGS">Clear lung XXXX bilaterally.   No pleural effusion.</AbstractText>
    <AbstractText Label="IMPRESSION">No acute disease.</AbstractText>
  </Abstract></Article></MedlineCitation>
  <MeSH><major>Opacity/lung/base/left/mild</major><major>Cardiomegaly</major>
        <automatic>Pneumonia</automatic></MeSH>
  <parentImage id="CXR7_IM-1-1001"/><parentImage id="CXR7_IM-1-2001"/>
</eCitation>"""


def _sentences(text):
    return [s.text for s in split_sentences(text)]


def test_parse_openi_xml_fields():
    report = parse_openi_xml(SAMPLE_XML)
    assert report.report_id == "CXR7"
    assert report.comparison == "Chest radiograph on XXXX."
    assert report.indication == "XXXX yr old with cough."
    assert report.findings == "Clear lung XXXX bilaterally. No pleural effusion."  # whitespace folded
    assert report.mesh_major == ("Opacity/lung/base/left/mild", "Cardiomegaly")
    assert report.mesh_automatic == ("Pneumonia",)
    assert report.image_ids == ("CXR7_IM-1-1001", "CXR7_IM-1-2001")
    assert report.text() == "Clear lung XXXX bilaterally. No pleural effusion. No acute disease."
    assert parse_openi_xml(SAMPLE_XML, report_id="7").report_id == "7"


def test_openi_sentences_carry_sections_and_offsets():
    report = parse_openi_xml(SAMPLE_XML)
    text = report.text()
    got = [(s.text, s.section) for s in report.sentences()]
    assert got == [
        ("Clear lung XXXX bilaterally.", "findings"),
        ("No pleural effusion.", "findings"),
        ("No acute disease.", "impression"),
    ]
    assert all(text[s.start:s.end] == s.text for s in report.sentences())
    impression_only = OpenIReport("1", "", "", "", "Normal chest.", (), (), ())
    assert [s.section for s in impression_only.sentences()] == ["impression"]


@pytest.mark.parametrize("bad", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>',
    b"<r><unclosed></r>",
])
def test_unsafe_or_broken_xml_is_refused(bad):
    with pytest.raises(ReportReadError):
        parse_openi_xml(bad)


def test_load_from_folder_and_tar(tmp_path):
    for n in (10, 2):
        (tmp_path / f"{n}.xml").write_bytes(SAMPLE_XML.replace(b"CXR7", f"CXR{n}".encode()))
    assert [r.report_id for r in load_openi_reports(tmp_path)] == ["CXR2", "CXR10"]
    archive = tmp_path / "reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("ecgen-radiology/1.xml")
        info.size = len(SAMPLE_XML)
        tar.addfile(info, io.BytesIO(SAMPLE_XML))
    assert [r.report_id for r in load_openi_reports(archive)] == ["CXR7"]
    with pytest.raises(ReportReadError):
        load_openi_reports(tmp_path / "missing")


def test_split_sections_mimic_style():
    text = ("FINAL REPORT\n EXAMINATION: CHEST (PA AND LAT)\n\nINDICATION: Cough.\n\n"
            "FINDINGS: Heart size is normal.\nNo effusion.\n\nIMPRESSION: No acute process.")
    sections = split_sections(text)
    assert sections["examination"] == "CHEST (PA AND LAT)"
    assert sections["indication"] == "Cough."
    assert sections["findings"] == "Heart size is normal.\nNo effusion."
    assert sections["impression"] == "No acute process."
    assert sections[UNHEADED] == "FINAL REPORT"
    assert split_sections("Heart normal. Findings: none.")["findings"] == "none."
    assert split_sections("No effusion.") == {UNHEADED: "No effusion."}
    # "Heart size: normal" is not a header: not a known one, and not in capitals.
    assert "heart_size" not in split_sections("Heart size: normal.")


def test_sentences_have_sections_and_exact_spans():
    text = "FINDINGS: Lungs are clear.\nIMPRESSION: 1. No acute disease. 2. Stable nodule."
    sentences = split_sentences(text)
    assert [(s.text, s.section) for s in sentences] == [
        ("Lungs are clear.", "findings"),
        ("1. No acute disease.", "impression"),
        ("2. Stable nodule.", "impression"),
    ]
    assert all(text[s.start:s.end] == s.text for s in sentences)


@pytest.mark.parametrize("text, expected", [
    ("Nodule measures 2.5 cm. Heart normal.", ["Nodule measures 2.5 cm.", "Heart normal."]),
    ("Discussed with Dr. Smith at 3 p.m. on Monday.", ["Discussed with Dr. Smith at 3 p.m. on Monday."]),
    ("Called at 3 p.m. The film is clear.", ["Called at 3 p.m.", "The film is clear."]),
    ("Size approx. 3 cm, e.g. a nodule.", ["Size approx. 3 cm, e.g. a nodule."]),
    ("No effusion. heart size is normal.", ["No effusion.", "heart size is normal."]),
    ("Is there a mass? No.", ["Is there a mass?", "No."]),
    ("Lungs clear\n\nHeart normal", ["Lungs clear", "Heart normal"]),
    # A line-per-finding report without periods: each line is a statement.
    ("Heart size enlarged\nSmall left effusion\n- no pneumothorax\n2) stable nodule",
     ["Heart size enlarged", "Small left effusion", "- no pneumothorax", "2) stable nodule"]),
    # A report wrapped at a fixed width runs on across line breaks.
    ("There is no focal\nconsolidation or effusion. Heart size is\nNormal.",
     ["There is no focal\nconsolidation or effusion.", "Heart size is\nNormal."]),
    ("Small effusions,\nBilateral. No\nPneumothorax.", ["Small effusions,\nBilateral.", "No\nPneumothorax."]),
    ('He said "no effusion." Heart fine.', ['He said "no effusion."', "Heart fine."]),
])
def test_sentence_splitting_edge_cases(text, expected):
    assert _sentences(text) == expected


@pytest.mark.parametrize("text, expected", [
    # The mark stands for a word; it ends a sentence only where a real sentence end follows.
    ("Clear lung XXXX. No effusion.", ["Clear lung XXXX.", "No effusion."]),
    ("Findings discussed with Dr. XXXX XXXX on XXXX XXXX at XXXX p.m. No effusion.",
     ["Findings discussed with Dr. XXXX XXXX on XXXX XXXX at XXXX p.m.", "No effusion."]),
    ("Sternotomy XXXX and XXXX XXXX are intact. Lungs clear.",
     ["Sternotomy XXXX and XXXX XXXX are intact.", "Lungs clear."]),
    ("Normal chest x-XXXX.", ["Normal chest x-XXXX."]),
    ("XXXX.", ["XXXX."]),
])
def test_deidentification_marks_do_not_break_sentences(text, expected):
    assert _sentences(text) == expected


def test_words_reproduce_substrings():
    text = "Well-expanded lungs; 2.5 cm nodule (right), effusion/pneumothorax: XXXX. Patient's x-XXXX"
    found = words(text)
    assert all(text[w.start:w.end] == w.text for w in found)
    assert [w.text for w in found] == [
        "Well-expanded", "lungs", "2.5", "cm", "nodule", "right", "effusion", "pneumothorax",
        "XXXX", "Patient's", "x-XXXX",
    ]


def test_is_deidentified():
    assert is_deidentified("XXXX") and is_deidentified("XXXX.") and not is_deidentified("XX")


@pytest.mark.shared_data
def test_real_openi_archive_parses():
    path = require_shared("openi-reports/NLMCXR_reports.tgz")
    reports = load_openi_reports(path)
    assert len(reports) == 3955
    assert len({r.report_id for r in reports}) == 3955
    assert sum(bool(r.mesh_major) for r in reports) == 3955
    for report in reports[:500]:
        text = report.text()
        assert all(text[s.start:s.end] == s.text for s in report.sentences())


def test_many_periods_in_one_sentence_cost_linear_time():
    """Each candidate end looks at a fixed span around it, never at the rest of the report: before,
    every "e.g." in a sentence split the sentence so far and copied the rest of the report."""
    def report(count):
        return lambda repeat: "Opacity e.g. " * count + "end." + " " * repeat

    text = report(20_000)(0)
    sentences = split_sentences(text)
    assert len(sentences) == 1 and sentences[0].end == len(text)
    assert growth_ratio(split_sentences, report(2_000), report(20_000)) < 25


def test_headers_are_tried_only_where_one_may_start_with_the_same_matches():
    """``_header_matches`` tries the header pattern at line starts and after sentence ends only;
    it must find what searching every position finds."""
    import random

    from lrclr.reports import text as report_text

    pieces = ["FINDINGS:", "Impression :", "  HISTORY:", "\n", ". ", ".  ", "!\n", "?\t", "no effusion",
              "WET READ:", "XXXX XXXX:", "a: b", "   ", "\n\n", "CLINICAL HISTORY:", "Comparison:", "TECHNIQUE :",
              "\r", "\x0c", ".\r"]
    rng = random.Random(1)
    found = 0
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        every_position = [(m.span(), m.group("name")) for m in report_text._HEADER_RE.finditer(text)]
        assert [(m.span(), m.group("name")) for m in report_text._header_matches(text)] == every_position, text
        found += len(every_position)
    assert found > 3000
