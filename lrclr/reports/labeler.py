"""Rule-based, transparent finding labeler for chest X-ray reports.

For each sentence it finds mentions of the NIH ChestX-ray14 findings and CheXpert observations
(pattern tables in ``lrclr.reports.finding_patterns``), decides whether each is asserted (1), denied (0) or
hedged (-1) from cue words whose scope ends at clause boundaries (NegEx-style, with pre- and
post-cues and pseudo-negations such as "no change in"), and extracts laterality and zone. Every
decision keeps the character spans of the words that caused it so the app can highlight them.

Statuses follow CheXpert: 1 positive, 0 negative, -1 uncertain, absent = not mentioned.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from functools import lru_cache

from lrclr.reports import finding_patterns as fp
from lrclr.reports.edge_patterns import compile_alternation, compile_cue_alternation, compile_pattern
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


@dataclass(frozen=True)
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
    return {
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


def _normalise(text: str) -> str:
    """Lower-case with every ``XXXX`` replaced by ``####``: same length, matches no word."""
    return re.sub(DEID_MARK, "#" * len(DEID_MARK), text, flags=re.IGNORECASE).lower()


# ---------------------------------------------------------------------------------------------
# mentions


def _trigger_spans(match: re.Match) -> tuple[tuple[int, int], ...]:
    groups = [match.span(i) for i in range(1, (match.re.groups or 0) + 1) if match.span(i)[0] >= 0]
    return tuple(groups) if groups else (match.span(),)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _raw_mentions(lowered: str, name: str) -> list[tuple[tuple[int, int], ...]]:
    """Trigger spans of each non-excluded, non-overlapping match of one finding's patterns."""
    tables = _tables()
    excluded = [m.span() for p in tables["exclude"].get(name, ()) for m in p.finditer(lowered)]
    found: list[tuple[tuple[int, int], ...]] = []
    for pattern in tables["finding"][name]:
        for match in pattern.finditer(lowered):
            spans = _trigger_spans(match)
            if any(_overlaps(s, e) for s in spans for e in excluded):
                continue
            if any(_overlaps(s, t) for s in spans for other in found for t in other):
                continue  # the same words already triggered this finding through another pattern
            found.append(spans)
    return found


@dataclass(frozen=True)
class _Clauses:
    """Clause boundaries of one text, found once: every mention's clause is then a bisection,
    not a rescan of the text (a rescan per mention made labelling quadratic in sentence length)."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    length: int

    @classmethod
    def of(cls, lowered: str) -> "_Clauses":
        spans = [m.span() for m in _tables()["boundary"].finditer(lowered)]
        return cls(tuple(s for s, _ in spans), tuple(e for _, e in spans), len(lowered))

    def around(self, start: int, end: int) -> tuple[int, int]:
        """The clause around [start, end): cue scopes stop at its edges."""
        before = bisect_right(self.ends, start)
        after = bisect_left(self.starts, end)
        return (self.ends[before - 1] if before else 0,
                self.starts[after] if after < len(self.starts) else self.length)


def _cues(lowered: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, position) for every cue; pseudo-negations and hedges that contain a
    negation word ("cannot be excluded") silence the negation cues they overlap."""
    tables = _tables()
    pseudo = [m.span() for m in tables["pseudo"].finditer(lowered)]
    cues: list[tuple[int, int, str, str]] = []
    for key, kind, where in (("pre_unc", "uncertainty", "pre"), ("post_unc", "uncertainty", "post"),
                             ("pre_neg", "negation", "pre"), ("post_neg", "negation", "post")):
        for match in tables[key].finditer(lowered):
            span = match.span()
            if span[0] == span[1] or any(_overlaps(span, p) for p in pseudo):
                continue
            if kind == "negation" and any(_overlaps(span, c[:2]) for c in cues if c[2] == "uncertainty"):
                continue
            cues.append((span[0], span[1], kind, where))
    return cues


@dataclass(frozen=True)
class _Cues:
    """A text's cues (see ``_cues``) with their starts sorted, so that a mention looks only at the
    cues inside its clause (looking at all of them made labelling quadratic in sentence length)."""

    cues: tuple[tuple[int, int, str, str], ...]  # in the order _cues found them: ties go to the first
    by_start: tuple[int, ...]  # indices into cues, ordered by start
    starts: tuple[int, ...]  # cues[i][0] for i in by_start

    @classmethod
    def of(cls, cues: list[tuple[int, int, str, str]]) -> "_Cues":
        by_start = tuple(sorted(range(len(cues)), key=lambda i: cues[i][0]))
        return cls(tuple(cues), by_start, tuple(cues[i][0] for i in by_start))

    def starting_in(self, start: int, end: int):
        """The cues that start in [start, end], in the order they were found."""
        chosen = self.by_start[bisect_left(self.starts, start):bisect_right(self.starts, end)]
        return [self.cues[i] for i in sorted(chosen)]


def _decide(clauses: _Clauses, triggers, cues: _Cues) -> tuple[int, tuple[int, int] | None, str]:
    """Status from the cue nearest to the trigger words inside their clause."""
    first, last = triggers[0], triggers[-1]
    clause_start, clause_end = clauses.around(first[0], last[1])
    best = None
    for start, end, kind, where in cues.starting_in(clause_start, clause_end):
        if any(_overlaps((start, end), t) for t in triggers):
            continue
        if where == "pre" and clause_start <= start and end <= last[0]:
            distance = max(0, first[0] - end)
        elif where == "post" and first[1] <= start and end <= clause_end:
            distance = max(0, start - last[1])
        else:
            continue
        if best is None or distance < best[0]:
            best = (distance, (start, end), kind)
    if best is None:
        return POSITIVE, None, ""
    return (NEGATIVE if best[2] == "negation" else UNCERTAIN), best[1], best[2]


def _places(lowered: str, table) -> list[tuple[int, int, str]]:
    """(start, end, name) of every laterality or zone word, in table then text order: found once
    per text, not once per mention."""
    return [(m.start(), m.end(), name) for name, pattern in table for m in pattern.finditer(lowered)]


def _nearest(places, clauses: _Clauses, triggers, window: tuple[int, int]) -> str:
    """The laterality or zone word nearest to the triggers, inside their clause and ``window``
    (the stretch not closer to another finding's words), never one of the trigger words."""
    clause_start, clause_end = clauses.around(triggers[0][0], triggers[-1][1])
    start, end = max(clause_start, window[0]), min(clause_end, window[1])
    best = None
    for place_start, place_end, name in places:
        if place_start < start or place_end > end or any(_overlaps((place_start, place_end), t) for t in triggers):
            continue
        distance = min(abs(place_start - triggers[-1][1]), abs(triggers[0][0] - place_end))
        if best is None or distance < best[0]:
            best = (distance, name)
    return best[1] if best else ""


@dataclass(frozen=True)
class _Neighbours:
    """Where a text's mentions start and end, sorted, for ``window``."""

    ends: tuple[int, ...]  # each mention's last trigger end
    starts: tuple[int, ...]  # each mention's first trigger start
    length: int

    @classmethod
    def of(cls, all_triggers, length: int) -> "_Neighbours":
        return cls(tuple(sorted(t[-1][1] for t in all_triggers)), tuple(sorted(t[0][0] for t in all_triggers)), length)

    def window(self, triggers) -> tuple[int, int]:
        """From the end of the previous other mention to the start of the next one: "right
        basilar atelectasis, no pneumothorax" gives the pneumothorax no side. (A mention that
        ends before these triggers start, or starts after they end, cannot share their words.)"""
        before = bisect_right(self.ends, triggers[0][0])
        after = bisect_left(self.starts, triggers[-1][1])
        return (self.ends[before - 1] if before else 0,
                self.starts[after] if after < len(self.starts) else self.length)


def label_sentence(sentence: Sentence | str) -> SentenceLabels:
    """Mentions in one sentence. Spans are offsets into the report when given a ``Sentence`` from
    ``split_sentences`` (its ``start`` is added), into the string itself when given a str."""
    if isinstance(sentence, str):
        sentence = Sentence(sentence, 0, len(sentence), "")
    text = sentence.text
    mentions = tuple(_shifted(m, sentence.start + start)
                     for start, end in _pieces(text) for m in _label_text(text[start:end]))
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


def _shifted(mention: Mention, offset: int) -> Mention:
    if offset == 0:
        return mention
    return replace(
        mention,
        triggers=tuple(Span(s.start + offset, s.end + offset) for s in mention.triggers),
        cue=Span(mention.cue.start + offset, mention.cue.end + offset) if mention.cue else None,
    )


# Reports repeat the same sentences ("No pneumothorax or pleural effusion.") thousands of times,
# so labeling is cached per sentence text; offsets are shifted afterwards.
@lru_cache(maxsize=50_000)
def _label_text(text: str) -> tuple[Mention, ...]:
    lowered = _normalise(text)
    found = [(name, triggers, None) for name in ALL_FINDINGS for triggers in _raw_mentions(lowered, name)]
    found += _normal_statements(lowered, found)
    if not found:
        return ()  # most text mentions no finding: no need to look for cues and clauses
    clauses = _Clauses.of(lowered)
    cues = _Cues.of(_cues(lowered))
    tables = _tables()
    places = (_places(lowered, tables["laterality"]), _places(lowered, tables["zones"]))
    neighbours = _Neighbours.of([triggers for _, triggers, _ in found], len(lowered))
    mentions = []
    for name, triggers, normal in found:
        status, cue, kind = (NEGATIVE, normal, "normal statement") if normal else _decide(clauses, triggers, cues)
        window = neighbours.window(triggers)
        mentions.append(_mention(places, clauses, name, status, triggers, cue, kind, window))
    order = {name: index for index, name in enumerate(ALL_FINDINGS)}
    mentions.sort(key=lambda m: (m.triggers[0].start, order[m.finding]))
    return tuple(mentions)


def _normal_statements(lowered, found):
    """Denials without a negation word ("heart size is normal"), unless the same words already
    triggered the finding (then the cue logic decides)."""
    out: list[tuple[str, tuple[tuple[int, int], ...], tuple[int, int]]] = []
    for name, patterns in _tables()["normal"].items():
        for pattern in patterns:
            for match in pattern.finditer(lowered):
                span = match.span()
                taken = [t for n, triggers, _ in found + out if n == name for t in triggers]
                if not any(_overlaps(span, t) for t in taken):
                    out.append((name, (span,), span))
    return out


def _mention(places, clauses, name, status, triggers, cue, kind, window) -> Mention:
    laterality_places, zone_places = places
    return Mention(
        finding=name,
        status=status,
        triggers=tuple(Span(s, e) for s, e in triggers),
        cue=Span(*cue) if cue else None,
        cue_kind=kind,
        laterality=_nearest(laterality_places, clauses, triggers, window),
        zone=_nearest(zone_places, clauses, triggers, window),
    )


def label_report(text: str) -> ReportLabels:
    """Labels for a whole report (any text; MIMIC-style headers are understood)."""
    sentences = tuple(label_sentence(s) for s in split_sentences(text))
    labels = aggregate(m for s in sentences for m in s.mentions)
    # CheXpert's rule: "No Finding" when no pathology is asserted or suspected (devices aside).
    if not any(status != NEGATIVE for name, status in labels.items() if name not in _NOT_PATHOLOGY):
        labels[NO_FINDING] = POSITIVE
    return ReportLabels(text=text, sentences=sentences, labels=labels)
