"""Rule-based, transparent finding labeler for chest X-ray reports.

For each sentence it finds mentions of the NIH ChestX-ray14 findings and CheXpert observations
(pattern tables in ``lrclr.reports.finding_patterns``), decides whether each is asserted (1), denied (0) or
hedged (-1) from cue words whose scope ends at clause boundaries (NegEx-style, with pre- and
post-cues and pseudo-negations such as "no change in"), and extracts laterality and zone. Every
decision keeps the character spans of the words that caused it so the app can highlight them.

Statuses follow CheXpert: 1 positive, 0 negative, -1 uncertain, absent = not mentioned.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from lrclr.reports import finding_patterns as fp
from lrclr.reports.edge_patterns import TextScan, WordStartIndex, compile_alternation, compile_cue_alternation, compile_pattern
from lrclr.reports.scopes import Cues, Edges, Places
from lrclr.findings import NIH_FINDINGS  # the one vocabulary of the model, the labeler and the pages
from lrclr.reports.text import DEID_MARK, Sentence, Span, split_sentences

# CheXpert observations that the NIH names do not already cover (Effusion, Pneumonia, ... are shared).
CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum", "Lung Opacity", "Lung Lesion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)
ALL_FINDINGS: tuple[str, ...] = NIH_FINDINGS + CHEXPERT_OBSERVATIONS
NO_FINDING = "No Finding"
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
# Findings that do not stop a report from being "No Finding" (CheXpert: devices are not disease).
_NOT_PATHOLOGY = frozenset({"Support Devices", NO_FINDING})


@dataclass(frozen=True, slots=True)  # slots: see Span
class Mention:
    """One finding mention: where it is, what was decided and which words decided it."""

    finding: str
    status: int
    triggers: tuple[Span, ...]
    cue: Span | None = None
    cue_kind: str = ""  # "negation", "uncertainty", "normal statement" or "" (asserted)
    laterality: str = ""  # "left", "right", "bilateral" or ""
    zone: str = ""  # "upper", "middle", "lower", "base", "apex", "retrocardiac", "perihilar" or ""


@dataclass(frozen=True)
class SentenceLabels:
    sentence: Sentence
    mentions: tuple[Mention, ...]

    @property
    def labels(self) -> dict[str, int]:
        return aggregate(self.mentions)


@dataclass(frozen=True)
class ReportLabels:
    text: str
    sentences: tuple[SentenceLabels, ...]
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def mentions(self) -> tuple[Mention, ...]:
        return tuple(m for s in self.sentences for m in s.mentions)

    def mentions_of(self, finding: str) -> tuple[Mention, ...]:
        return tuple(m for m in self.mentions if m.finding == finding)

    def row(self) -> dict[str, int | None]:
        """One value per finding in ``ALL_FINDINGS`` order; None where not mentioned."""
        return {name: self.labels.get(name) for name in ALL_FINDINGS}


def aggregate(mentions) -> dict[str, int]:
    """Finding -> status over several mentions: positive beats uncertain beats negative.

    A finding asserted anywhere is present even if denied elsewhere ("no effusion on the right.
    Small left effusion."); a hedge outranks a denial because it is the more cautious reading
    ("no definite effusion; a tiny effusion cannot be excluded").
    """
    rank = {POSITIVE: 2, UNCERTAIN: 1, NEGATIVE: 0}
    out: dict[str, int] = {}
    for mention in mentions:
        if mention.finding not in out or rank[mention.status] > rank[out[mention.finding]]:
            out[mention.finding] = mention.status
    return out


# ---------------------------------------------------------------------------------------------
# compiled tables


@lru_cache(maxsize=1)
def _tables():
    finding = {
        name: tuple(compile_pattern(p) for p in fp.FINDING_PATTERNS.get(name, ()))
        for name in ALL_FINDINGS
    }
    tables = {
        "finding": finding,
        "exclude": {name: tuple(compile_pattern(p) for p in ps) for name, ps in fp.EXCLUSIONS.items()},
        "normal": {name: tuple(compile_pattern(p) for p in ps) for name, ps in fp.NORMAL_STATEMENTS.items()},
        "pre_neg": compile_cue_alternation(fp.PRE_NEGATION),
        "post_neg": compile_cue_alternation(fp.POST_NEGATION),
        "pre_unc": compile_cue_alternation(fp.PRE_UNCERTAINTY),
        "post_unc": compile_cue_alternation(fp.POST_UNCERTAINTY),
        "pseudo": compile_cue_alternation(fp.PSEUDO_NEGATION),
        "boundary": compile_alternation(fp.CLAUSE_BOUNDARIES),
        "laterality": tuple((name, compile_pattern(p)) for name, p in fp.LATERALITY),
        "zones": tuple((name, compile_pattern(p)) for name, p in fp.ZONES),
    }
    # Every pattern above is tried only where a word can start its match (edge_patterns).
    tables["index"] = WordStartIndex(_every_pattern(tables))
    return tables


def _every_pattern(tables):
    for key in ("finding", "exclude", "normal"):
        for patterns in tables[key].values():
            yield from patterns
    for key in ("pre_neg", "post_neg", "pre_unc", "post_unc", "pseudo", "boundary"):
        yield tables[key]
    for key in ("laterality", "zones"):
        yield from (pattern for _, pattern in tables[key])


def _normalise(text: str) -> str:
    """Lower-case with every ``XXXX`` replaced by ``####``: same length, matches no word. A
    character whose lower case is longer ("İ" becomes "i" and a combining dot) stays as it is,
    so that every span found in the result is a span of the report."""
    marked = re.sub(DEID_MARK, "#" * len(DEID_MARK), text, flags=re.IGNORECASE)
    lowered = marked.lower()
    if len(lowered) == len(marked):
        return lowered
    return "".join(low if len(low := char.lower()) == 1 else char for char in marked)


# ---------------------------------------------------------------------------------------------
# mentions


def _trigger_spans(match: re.Match) -> tuple[tuple[int, int], ...]:
    """The spans of the groups that took part (``regs`` holds the whole match's, then each group's,
    (-1, -1) for one that did not), or the whole match's where there are none."""
    groups = tuple(span for span in match.regs[1:] if span[0] >= 0)
    return groups or (match.regs[0],)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _raw_mentions(scan: TextScan, name: str) -> list[tuple[tuple[int, int], ...]]:
    """Trigger spans of each non-excluded, non-overlapping match of one finding's patterns."""
    tables = _tables()
    matches = [_trigger_spans(match) for pattern in tables["finding"][name] for match in scan.finditer(pattern)]
    if not matches:
        return []  # the usual case: no need to look for the look-alikes
    excluded = [m.span() for p in tables["exclude"].get(name, ()) for m in scan.finditer(p)]
    found: list[tuple[tuple[int, int], ...]] = []
    for spans in matches:
        if any(_overlaps(s, e) for s in spans for e in excluded):
            continue
        if any(_overlaps(s, t) for s in spans for other in found for t in other):
            continue  # the same words already triggered this finding through another pattern
        found.append(spans)
    return found


def _cues(scan: TextScan) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, position) for every cue; pseudo-negations and hedges that contain a
    negation word ("cannot be excluded") silence the negation cues they overlap."""
    tables = _tables()
    pseudo = [m.span() for m in scan.finditer(tables["pseudo"])]
    cues: list[tuple[int, int, str, str]] = []
    for key, kind, where in (("pre_unc", "uncertainty", "pre"), ("post_unc", "uncertainty", "post"),
                             ("pre_neg", "negation", "pre"), ("post_neg", "negation", "post")):
        for match in scan.finditer(tables[key]):
            span = match.span()
            if span[0] == span[1] or any(_overlaps(span, p) for p in pseudo):
                continue
            if kind == "negation" and any(_overlaps(span, c[:2]) for c in cues if c[2] == "uncertainty"):
                continue
            cues.append((span[0], span[1], kind, where))
    return cues


def _decide(triggers, clause: tuple[int, int], cues: Cues) -> tuple[int, tuple[int, int] | None, str]:
    """Status from the cue nearest to the trigger words inside their clause."""
    found = cues.nearest(triggers, *clause)
    if found is None:
        return POSITIVE, None, ""
    kind, span = found
    return (NEGATIVE if kind == "negation" else UNCERTAIN), span, kind


def label_sentence(sentence: Sentence | str) -> SentenceLabels:
    """Mentions in one sentence. Spans are offsets into the report when given a ``Sentence`` from
    ``split_sentences`` (its ``start`` is added), into the string itself when given a str."""
    if isinstance(sentence, str):
        sentence = Sentence(sentence, 0, len(sentence), "")
    text = sentence.text
    mentions = tuple(_mention(found, sentence.start + start)
                     for start, end in _pieces(text) for found in _label_text(text[start:end]))
    return SentenceLabels(sentence, mentions)


# Cue scopes, laterality and zone all stop at clause edges, so a long sentence labelled a group of
# clauses at a time gives the mentions it gives whole, at a cost linear in its length (a report
# without periods is one "sentence" of any length). Only a single clause longer than this is cut
# (no OpenI sentence comes near it): the one case where a cue and its finding could be separated.
_MAX_PIECE_CHARS = 2000


def _pieces(text: str) -> list[tuple[int, int]]:
    """[start, end) pieces of ``text``, each at most ``_MAX_PIECE_CHARS`` long, cut at clause
    boundaries where there are any."""
    if len(text) <= _MAX_PIECE_CHARS:
        return [(0, len(text))]
    cuts = [match.end() for match in _tables()["boundary"].finditer(_normalise(text))]
    pieces, start, previous = [], 0, None
    for cut in cuts + [len(text)]:
        while cut - start > _MAX_PIECE_CHARS:
            if previous is not None and previous > start:
                end = previous
            else:
                end = _fallback_cut(text, start, start + _MAX_PIECE_CHARS)
            pieces.append((start, end))
            start = end
        previous = cut
    if start < len(text):
        pieces.append((start, len(text)))
    return pieces


def _fallback_cut(text: str, start: int, limit: int) -> int:
    """Where to cut a clause longer than a piece: after its last comma (a list of findings), else
    at its last space, else at the limit."""
    comma = text.rfind(",", start + 1, limit - 1)
    if comma > start:
        return comma + 1
    space = max(text.rfind(blank, start + 1, limit) for blank in " \n\t")
    return space if space > start else limit


# One decided mention, offsets into its text: (finding, status, trigger spans, cue span or None,
# cue kind, laterality, zone). Plain tuples, made into ``Mention``s once their offset is known.
_Decided = tuple[str, int, tuple[tuple[int, int], ...], tuple[int, int] | None, str, str, str]


# Reports repeat the same sentences ("No pneumothorax or pleural effusion.") thousands of times,
# so labeling is cached per sentence text; offsets are shifted afterwards. Only sentences up to
# this long are kept: longer ones (pieces of a report without periods) hardly ever recur, and
# 50,000 of them would hold 100 MB.
_CACHED_CHARS = 500


def _label_text(text: str) -> tuple[_Decided, ...]:
    return _label_short_text(text) if len(text) <= _CACHED_CHARS else _label_any_text(text)


@lru_cache(maxsize=50_000)
def _label_short_text(text: str) -> tuple[_Decided, ...]:
    return _label_any_text(text)


def _label_any_text(text: str) -> tuple[_Decided, ...]:
    tables = _tables()
    scan = tables["index"].scan(_normalise(text))
    found = [(name, triggers, None) for name in ALL_FINDINGS for triggers in _raw_mentions(scan, name)]
    found += _normal_statements(scan, found)
    if not found:
        return ()  # most text mentions no finding: no need to look for cues and clauses
    clauses = Edges.of_boundaries(scan, tables["boundary"])
    cues = Cues.of(_cues(scan))
    laterality, zone = Places.of(scan, tables["laterality"]), Places.of(scan, tables["zones"])
    neighbours = Edges.of_mentions([triggers for _, triggers, _ in found], len(scan.text))
    order = {name: index for index, name in enumerate(ALL_FINDINGS)}
    decided = []
    for name, triggers, normal in sorted(found, key=lambda f: (f[1][0][0], order[f[0]])):
        clause = clauses.around(triggers[0][0], triggers[-1][1])
        status, cue, kind = (NEGATIVE, normal, "normal statement") if normal else _decide(triggers, clause, cues)
        window = neighbours.around(triggers[0][0], triggers[-1][1])
        decided.append((name, status, triggers, cue, kind,
                        laterality.nearest(triggers, clause, window), zone.nearest(triggers, clause, window)))
    return tuple(decided)


def _normal_statements(scan: TextScan, found):
    """Denials without a negation word ("heart size is normal"), unless the same words already
    triggered the finding (then the cue logic decides)."""
    out: list[tuple[str, tuple[tuple[int, int], ...], tuple[int, int]]] = []
    for name, patterns in _tables()["normal"].items():
        taken = [t for n, triggers, _ in found if n == name for t in triggers]
        for pattern in patterns:
            for match in scan.finditer(pattern):
                span = match.span()
                if not any(_overlaps(span, t) for t in taken):
                    out.append((name, (span,), span))
                    taken.append(span)
    return out


def _mention(found, offset: int) -> Mention:
    """A ``Mention`` from one of ``_label_text``'s tuples, its spans moved by ``offset``."""
    name, status, triggers, cue, kind, laterality, zone = found
    return Mention(
        finding=name,
        status=status,
        triggers=tuple([Span(start + offset, end + offset) for start, end in triggers]),
        cue=Span(cue[0] + offset, cue[1] + offset) if cue else None,
        cue_kind=kind,
        laterality=laterality,
        zone=zone,
    )


@contextmanager
def _cyclic_collection_paused():
    """Defer Python's cyclic garbage collector while a report is labelled.

    Labelling makes tuples, spans and mentions by the ten thousand, none in a reference cycle, so
    reference counting frees all of them; but each few hundred allocations start a collection, and
    in the app a full one walks every object torch, transformers and streamlit hold: half of a 2 MB
    report's time (benchmarks.report_labeling). Re-enabled only if it was on: a caller that switched it off keeps it off,
    and a second session's thread that starts while this pause is on leaves the ending of it to
    this one (the pause is process-wide, so that thread may finish with the collector back on).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def label_report(text: str) -> ReportLabels:
    """Labels for a whole report (any text; MIMIC-style headers are understood)."""
    with _cyclic_collection_paused():
        sentences = tuple(label_sentence(s) for s in split_sentences(text))
    labels = aggregate(m for s in sentences for m in s.mentions)
    # CheXpert's rule: "No Finding" when no pathology is asserted or suspected (devices aside).
    if not any(status != NEGATIVE for name, status in labels.items() if name not in _NOT_PATHOLOGY):
        labels[NO_FINDING] = POSITIVE
    return ReportLabels(text=text, sentences=sentences, labels=labels)
