"""Regular expressions that open with a word edge, searched at the regex engine's fast speed.

Nearly every labeler pattern opens with ``\\b`` or a look-behind such as ``(?<![\\w#])``. Such an
opening defeats the engine's scan for a literal prefix, so the pattern is tried at every position
of the text: on a 2 MB report ``\\b(atelectasis)\\b`` took 0.06 s and ``atelectasis\\b`` 0.005 s,
and the labeler runs about a hundred patterns. ``EdgeFirstPattern`` searches for the rest of the
pattern and tests the edge by hand at each hit, which finds exactly the matches ``finditer`` of
the whole pattern finds (the edge is zero-width and looks only at the character before).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator


def _is_word_char(text: str, index: int) -> bool:
    """``re``'s ``\\w`` for str patterns: Unicode alphanumerics and the underscore."""
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


def word_boundary(text: str, index: int) -> bool:
    """``\\b`` at ``index``."""
    return _is_word_char(text, index - 1) != _is_word_char(text, index)


def not_after_word_or_hash(text: str, index: int) -> bool:
    """``(?<![\\w#])`` at ``index`` (``#`` stands for a de-identified word, see the labeler)."""
    return not (_is_word_char(text, index - 1) or (index > 0 and text[index - 1] == "#"))


class EdgeFirstPattern:
    """``edge`` followed by the regex ``rest``, with ``finditer`` and ``groups`` like ``re.Pattern``."""

    def __init__(self, rest: str, edge: Callable[[str, int], bool]):
        self.pattern = re.compile(rest)
        self.groups = self.pattern.groups
        self._edge = edge

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
        found = sorted(((m.start(), order, m) for order, part in enumerate(self.parts)
                        for m in part.finditer(text, pos, len(text) if endpos is None else endpos)),
                       key=lambda item: item[:2])
        end = -1
        for start, _, match in found:
            if start >= end:
                yield match
                end = match.end()


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
