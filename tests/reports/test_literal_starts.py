"""Which literal strings every match of a pattern starts with: the index of the labeler's matcher
skips every other place, so an answer that is too narrow would lose matches."""

from __future__ import annotations

import re

import pytest

from tests.support.paths import require_shared
from lrclr.reports import finding_patterns as fp
from lrclr.reports.literal_starts import MAX_START_CHARS, MAX_STARTS, literal_starts


@pytest.mark.parametrize("pattern, starts", [
    (r"(?:broncho)?pneumonias?", {"bronchop", "pneumoni"}),  # cut to MAX_START_CHARS
    (r"\b(cardiac|heart)\s+(enlargement)", {"cardiac", "heart"}),
    (r"soft[- ]tissue", {"soft-tis", "soft tis"}),
    (r"(?<!to\s)suggest(?:s|ing)?", {"suggest"}),  # a look-behind only narrows where it starts
    (r"\b(?=there\s+is)", {"there"}),  # a look-ahead's own start
    (r"ab?c", {"abc", "ac"}),
    (r"a|ab|abc", {"a"}),  # a start covers the starts it opens
    (r"(?:no|not)\s", {"no"}),
    (r"x{2,3}y", {"xxy", "xxxy"}),
    (r"(a)\1", {"a"}),  # what follows the first unknown part (a back-reference) is not needed
    # An unbounded repeat ends at the 8-character cut, not in an endless recursion.
    (r"#+ a", {"#" * n + " a" for n in range(1, 7)} | {"#" * 7 + " ", "#" * 8}),
])
def test_known_starts(pattern, starts):
    assert literal_starts(pattern) == starts


@pytest.mark.parametrize("pattern", [
    r"\w+ing",  # a category first
    r"[a-z]bc",  # a range
    r"(?i)abc",  # case-insensitive: the text's case would matter
    r"a?",  # may match the empty string
    r"(?:ab)*c?",
    r"[^a]bc",
    r".bc",
])
def test_unknown_starts_are_none(pattern):
    assert literal_starts(pattern) is None


def test_many_branches_are_cut_shorter_until_few_enough():
    words = [f"w{i:03d}x" for i in range(200)]
    starts = literal_starts("|".join(words))
    assert starts is not None and len(starts) <= MAX_STARTS
    assert all(any(word.startswith(start) for start in starts) for word in words)
    assert all(len(start) <= MAX_START_CHARS for start in starts)


def _labeler_patterns():
    tables = (fp.FINDING_PATTERNS, fp.EXCLUSIONS, fp.NORMAL_STATEMENTS)
    singles = [p for table in tables for patterns in table.values() for p in patterns]
    cues = [p for table in (fp.PRE_NEGATION, fp.POST_NEGATION, fp.PRE_UNCERTAINTY, fp.POST_UNCERTAINTY,
                            fp.PSEUDO_NEGATION, fp.CLAUSE_BOUNDARIES) for p in table]
    return singles + cues + [p for _, p in fp.LATERALITY + fp.ZONES]


@pytest.mark.shared_data
def test_every_match_on_real_reports_opens_with_one_of_its_starts():
    from lrclr.reports.labeler import _normalise
    from lrclr.reports.text import load_openi_reports

    reports = load_openi_reports(require_shared("openi-reports/NLMCXR_reports.tgz"))
    text = _normalise(" ".join(f"{r.findings} {r.impression}" for r in reports[:1500]))
    known = 0
    for pattern in _labeler_patterns():
        starts = literal_starts(pattern)
        if starts is None:
            continue
        known += 1
        openings = tuple(starts)
        for match in re.finditer(pattern, text):
            assert text.startswith(openings, match.start()), (pattern, match.group())
    assert known > 100
