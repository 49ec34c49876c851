"""Fast edge-first patterns find exactly what the plain regular expressions find."""

from __future__ import annotations

import pytest

from tests.support.paths import require_shared
from lrclr.reports import finding_patterns as fp
from lrclr.reports.edge_patterns import (EdgeFirstPattern, WordStartIndex, compile_alternation, compile_cue_alternation,
                                         compile_pattern)
from lrclr.reports.labeler import _normalise

_SAMPLE = _normalise(
    "Heart size is mildly enlarged; the cardiac silhouette, which was normal, is now large. No "
    "pneumothorax, effusion or focal consolidation. XXXX effusion. Possible right lower lobe nodule? "
    "Mild edema cannot be excluded but there is no pneumonia. The tube has been removed. bi-basilar "
    "atelectasis, not seen before; pleural fluid in the fissure. costophrenic angles are blunted. "
    "_nodule nodule_ 2nodules ####nodule #### mass.cardiomegaly,effusion"
)


def _matches(pattern, text):
    return _matches_of(pattern.finditer(text), pattern.groups)


def _matches_of(found, groups):
    return [(m.span(), tuple(m.span(g) for g in range(1, groups + 1))) for m in found]


def _all_single_patterns():
    tables = (fp.FINDING_PATTERNS, fp.EXCLUSIONS, fp.NORMAL_STATEMENTS)
    singles = [p for table in tables for patterns in table.values() for p in patterns]
    return singles + [p for _, p in fp.LATERALITY + fp.ZONES]


def _texts(shared: bool):
    if not shared:
        return [_SAMPLE]
    from lrclr.reports.text import load_openi_reports

    reports = load_openi_reports(require_shared("openi-reports/NLMCXR_reports.tgz"))
    return [_SAMPLE, _normalise(" ".join(f"{r.findings} {r.impression}" for r in reports[:1500]))]


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=pytest.mark.shared_data)],
                         ids=["sample", "openi"])
def test_every_labeler_pattern_finds_the_same_matches_fast_and_plain(shared):
    texts = _texts(shared)
    lifted = 0
    for pattern in _all_single_patterns():
        fast, plain = compile_pattern(pattern), compile_pattern(pattern, fast=False)
        lifted += isinstance(fast, EdgeFirstPattern)
        for text in texts:
            assert _matches(fast, text) == _matches(plain, text), pattern
    assert lifted > 50  # the fast path is the one taken
    for cues in (fp.PRE_NEGATION, fp.POST_NEGATION, fp.PRE_UNCERTAINTY, fp.POST_UNCERTAINTY, fp.PSEUDO_NEGATION):
        for text in texts:
            assert _matches(compile_cue_alternation(cues), text) == \
                _matches(compile_cue_alternation(cues, fast=False), text)
    for text in texts:
        assert _matches(compile_alternation(fp.CLAUSE_BOUNDARIES), text) == \
            _matches(compile_alternation(fp.CLAUSE_BOUNDARIES, fast=False), text)


def _every_compiled_pattern():
    """(fast, plain) for every pattern and alternation the labeler compiles."""
    pairs = [(compile_pattern(p), compile_pattern(p, fast=False)) for p in _all_single_patterns()]
    for cues in (fp.PRE_NEGATION, fp.POST_NEGATION, fp.PRE_UNCERTAINTY, fp.POST_UNCERTAINTY, fp.PSEUDO_NEGATION):
        pairs.append((compile_cue_alternation(cues), compile_cue_alternation(cues, fast=False)))
    pairs.append((compile_alternation(fp.CLAUSE_BOUNDARIES), compile_alternation(fp.CLAUSE_BOUNDARIES, fast=False)))
    return pairs


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=pytest.mark.shared_data)],
                         ids=["sample", "openi"])
def test_patterns_tried_only_where_a_word_starts_find_the_same_matches(shared):
    """The labeler's path: one ``WordStartIndex`` over all its patterns, each tried only where a
    word opens with one of its literal starts."""
    pairs = _every_compiled_pattern()
    index = WordStartIndex(fast for fast, _ in pairs)
    assert len(index._key) > 60  # nearly every pattern goes through the index
    for text in _texts(shared):
        scan = index.scan(text)
        for fast, plain in pairs:
            assert _matches_of(scan.finditer(fast), fast.groups) == _matches(plain, text), getattr(plain, "pattern", plain)


def test_a_word_start_index_tries_a_pattern_at_no_other_place():
    pattern = compile_pattern(r"\b(?:broncho)?(pneumonia)\b")
    assert pattern.word_prefixes == ("bronchop", "pneumoni")  # starts are cut to 8 characters
    text = "pneumonia, bronchopneumonia; xpneumonia pneumonias _pneumonia 2pneumonia pneumonia"
    scan = WordStartIndex([pattern]).scan(text)
    assert [m.span(1) for m in scan.finditer(pattern)] == [(0, 9), (18, 27), (73, 82)]
    assert [m.span(1) for m in scan.finditer(pattern)] == [m.span(1) for m in pattern.finditer(text)]
    # A pattern the index does not hold is searched the plain way.
    other = compile_pattern(r"\bbronch\w*")
    assert [m.group() for m in scan.finditer(other)] == ["bronchopneumonia"]


def test_a_leading_boundary_over_a_top_level_alternation_is_not_lifted():
    # "\bfoo|bar": the \b belongs to foo only; lifting it would demand an edge before "bar" too.
    pattern = compile_pattern(r"\bfoo|bar")
    assert _matches(pattern, "xbar foo") == [((1, 4), ()), ((5, 8), ())]
