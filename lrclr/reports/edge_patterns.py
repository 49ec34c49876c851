"""Regular expressions that open with a word edge, tried only where a match can start.

Nearly every labeler pattern opens with ``\\b`` or a look-behind such as ``(?<![\\w#])``. Such an
opening defeats the regex engine's scan for a literal prefix, so the pattern is tried at every
position of the text: on a 2 MB report ``\\b(atelectasis)\\b`` took 0.06 s and ``atelectasis\\b``
0.005 s, and the labeler runs about a hundred patterns. ``EdgeFirstPattern`` searches for the rest
of the pattern and tests the edge by hand at each hit, which finds exactly the matches ``finditer``
of the whole pattern finds (the edge is zero-width and looks only at the character before).

A match after a word edge starts where a word starts, and it starts with one of a few literal
strings (``lrclr.reports.literal_starts``). ``WordStartIndex`` reads the words of a text once and
hands each pattern the places where a word opens with one of its starts; the pattern is tried
there only (``TextScan.finditer``), the same matches for a fraction of the work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from lrclr.reports.literal_starts import literal_starts

_WORD = re.compile(r"\w+")


def _is_word_char(text: str, index: int) -> bool:
    """``re``'s ``\\w`` for str patterns: Unicode alphanumerics and the underscore."""
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


def word_boundary(text: str, index: int) -> bool:
    """``\\b`` at ``index``."""
    return _is_word_char(text, index - 1) != _is_word_char(text, index)


def not_after_word_or_hash(text: str, index: int) -> bool:
    """``(?<![\\w#])`` at ``index`` (``#`` stands for a de-identified word, see the labeler)."""
    return not (_is_word_char(text, index - 1) or (index > 0 and text[index - 1] == "#"))


def _not_after_hash(text: str, index: int) -> bool:
    return index == 0 or text[index - 1] != "#"


# The edges where a word starts: no character before it is a word character, so ``\\b`` always
# holds there and ``(?<![\\w#])`` needs only the "#" test.
_EDGE_AT_WORD_START: dict[Callable[[str, int], bool], Callable[[str, int], bool] | None] = {
    word_boundary: None, not_after_word_or_hash: _not_after_hash,
}


class EdgeFirstPattern:
    """``edge`` followed by the regex ``rest``, with ``finditer`` and ``groups`` like ``re.Pattern``."""

    def __init__(self, rest: str, edge: Callable[[str, int], bool]):
        self.pattern = re.compile(rest)
        self.groups = self.pattern.groups
        self._edge = edge
        self.word_prefixes = _word_prefixes(rest)
        self._edge_at_word_start = _EDGE_AT_WORD_START.get(edge, edge)

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match]:
        endpos = len(text) if endpos is None else min(endpos, len(text))
        while pos <= endpos:
            match = self.pattern.search(text, pos, endpos)
            if match is None:
                return
            if self._edge(text, match.start()):
                yield match
                pos = max(match.end(), match.start() + 1)
            else:
                pos = match.start() + 1

    def finditer_at(self, text: str, word_starts: Sequence[int]) -> list[re.Match]:
        """``list(finditer(text))`` when every match must start at one of ``word_starts`` (sorted
        places where a word of ``text`` starts). A list, not a generator: it is read whole, and
        this is the labeler's innermost loop."""
        found: list[re.Match] = []
        free, edge, match_at = 0, self._edge_at_word_start, self.pattern.match
        for start in word_starts:
            if start < free or (edge is not None and not edge(text, start)):
                continue
            match = match_at(text, start)
            if match is not None:
                found.append(match)
                free = max(match.end(), start + 1)
        return found


def _word_prefixes(rest: str) -> tuple[str, ...] | None:
    """Word characters every match of ``rest`` opens with, one string per way it can open; None
    where a match could open otherwise. Both edges here put a match after a word edge, so with
    a word character first it starts where a word starts, and that word opens with one of these
    (a start's word characters before any other: "soft-tis" gives "soft")."""
    starts = literal_starts(rest)
    if starts is None or not all(_is_word_char(start, 0) for start in starts):
        return None
    return tuple(sorted({match.group() for match in map(_WORD.match, starts) if match is not None}))


class WordStartIndex:
    """For a fixed set of patterns: which of them may match where each word of a text starts."""

    _CACHE_WORDS = 100_000  # distinct words remembered; past that the cache starts over

    def __init__(self, patterns: Iterable):
        self._key: dict[int, int] = {}  # id(pattern) -> its number here
        self._patterns: list = []  # held, so that no other object can take a held pattern's id
        self._by_prefix: dict[str, list[int]] = {}
        for pattern in _flattened(patterns):
            prefixes = getattr(pattern, "word_prefixes", None)
            if prefixes is None or id(pattern) in self._key:
                continue
            self._key[id(pattern)] = key = len(self._key)
            self._patterns.append(pattern)
            for prefix in prefixes:
                self._by_prefix.setdefault(prefix, []).append(key)
        self._longest = max((len(prefix) for prefix in self._by_prefix), default=0)
        self._by_word: dict[str, tuple[int, ...]] = {}

    def _patterns_for(self, word: str) -> tuple[int, ...]:
        found = self._by_word.get(word)
        if found is None:
            keys: set[int] = set()
            for length in range(1, min(len(word), self._longest) + 1):
                keys.update(self._by_prefix.get(word[:length], ()))
            found = tuple(keys)
            if len(self._by_word) >= self._CACHE_WORDS:
                self._by_word = {}
            self._by_word[word] = found
        return found

    def scan(self, text: str) -> "TextScan":
        where: dict[str, list[int]] = {}  # each distinct word: where it starts
        for match in _WORD.finditer(text):
            where.setdefault(match.group(), []).append(match.start())
        starts: dict[int, list[int]] = {}
        for word, places in where.items():
            for key in self._patterns_for(word):
                starts.setdefault(key, []).extend(places)
        for places in starts.values():
            places.sort()
        return TextScan(text, self._key, starts)


class TextScan:
    """One text read by a ``WordStartIndex``: ``finditer(pattern)`` is ``pattern.finditer(text)``."""

    def __init__(self, text: str, keys: dict[int, int], starts: dict[int, list[int]]):
        self.text = text
        self._keys = keys
        self._starts = starts

    def finditer(self, pattern) -> Iterable[re.Match]:
        if isinstance(pattern, MergedPatterns):
            return pattern.merged(self.finditer(part) for part in pattern.parts)
        key = self._keys.get(id(pattern))
        if key is None:
            return pattern.finditer(self.text)
        starts = self._starts.get(key)
        return pattern.finditer_at(self.text, starts) if starts else ()


def _flattened(patterns: Iterable):
    for pattern in patterns:
        if isinstance(pattern, MergedPatterns):
            yield from _flattened(pattern.parts)
        else:
            yield pattern


def _has_top_level_bar(pattern: str) -> bool:
    """Whether ``pattern`` is an alternation at its top level (then a leading ``\\b`` governs
    only its first branch and cannot be lifted out)."""
    depth, index, in_class = 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1:index + 2] == "]":
                index += 1  # "[]...]": a leading ] is a literal
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        index += 1
    return False


def compile_pattern(pattern: str, fast: bool = True):
    """``re.compile(pattern)``, or the same matches found faster when it opens with ``\\b``."""
    if fast and pattern.startswith(r"\b") and not pattern.startswith(r"\b(?=") and not _has_top_level_bar(pattern):
        return EdgeFirstPattern(pattern[2:], word_boundary)
    return re.compile(pattern)


class MergedPatterns:
    """The leftmost non-overlapping matches of several patterns: what one alternation of them
    finds (where two start at the same place, the earlier pattern wins), except that a match of
    one part overlapping an earlier match of another is dropped where the alternation might have
    found a later one. Lets an alternation whose branches open differently (``;`` and
    ``\\bbut\\b``) be searched by fast parts; the labeler's boundaries and cues never overlap so."""

    def __init__(self, parts):
        self.parts = tuple(parts)
        self.groups = 0

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match]:
        endpos = len(text) if endpos is None else endpos
        return iter(self.merged(part.finditer(text, pos, endpos) for part in self.parts))

    @staticmethod
    def merged(part_matches: Iterable[Iterable[re.Match]]) -> list[re.Match]:
        """What ``finditer`` gives, from each part's matches found already (each in text order)."""
        found = [list(matches) for matches in part_matches]
        if sum(1 for matches in found if matches) <= 1:
            return next((matches for matches in found if matches), [])  # the usual case: nothing to merge
        ordered = sorted(((m.start(), order, m) for order, matches in enumerate(found) for m in matches),
                         key=_start_and_order)
        return list(_non_overlapping(ordered))


def _non_overlapping(ordered: Iterable[tuple[int, int, re.Match]]) -> Iterator[re.Match]:
    """Matches in order of (start, part), each dropped that starts inside the one before it."""
    end = -1
    for start, _, match in ordered:
        if start >= end:
            yield match
            end = match.end()


def _start_and_order(item: tuple[int, int, re.Match]) -> tuple[int, int]:
    return item[0], item[1]


def compile_alternation(patterns, fast: bool = True):
    """``re.compile("|".join(patterns))``: branches that open with ``\\b`` searched as one fast
    pattern, the others as another."""
    edged = [p for p in patterns if p.startswith(r"\b") and not _has_top_level_bar(p)]
    others = [p for p in patterns if p not in edged]
    if not fast or not edged:
        return re.compile("|".join(patterns))
    lifted = EdgeFirstPattern("|".join(f"(?:{p[2:]})" for p in edged), word_boundary)
    return MergedPatterns([re.compile("|".join(others)), lifted] if others else [lifted])


def compile_cue_alternation(patterns, fast: bool = True):
    """One regex for a list of cue phrases: longest first, so that "no evidence of" wins over
    "no"; a cue made of words must stand alone (not inside "another" or next to ``####``); a
    punctuation cue such as ``\\?`` needs no edges."""
    ordered = sorted(patterns, key=len, reverse=True)
    words = [p for p in ordered if not p.startswith("\\")]
    punctuation = [p for p in ordered if p.startswith("\\")]
    if not fast:
        wrapped = (f"(?<![\\w#])(?:{p})(?![\\w#])" if p in words else f"(?:{p})" for p in ordered)
        return re.compile("|".join(wrapped))
    lifted = EdgeFirstPattern("|".join(f"(?:{p})(?![\\w#])" for p in words), not_after_word_or_hash)
    return MergedPatterns([lifted, re.compile("|".join(punctuation))]) if punctuation else lifted
