"""Which literal strings every match of a regular expression starts with.

``literal_starts(r"(?:broncho)?pneumonias?")`` is ``{"bronchop", "pneumoni"}``: no match can start
anywhere else. The labeler's matcher (``lrclr.reports.edge_patterns``) tries a pattern only where a
word of the text begins with one of them, instead of at every character, which is what Python's
``re`` does for a pattern that opens with a group, a repeat or an alternation.

The answer is read off the parsed pattern (``re._parser``, the parser ``re.compile`` itself uses).
It errs only towards "unknown" (None): anything it does not understand (a character class such as
``\\w``, a back-reference, an inline flag) makes the answer None, and then the pattern is searched
the plain way. ``tests/reports/test_edge_patterns.py`` checks on real reports that both ways find
exactly the same matches.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

_sre: Any
_sre_parse: Any
try:  # private modules of the standard library: without them every answer is "unknown"
    _sre = importlib.import_module("re._constants")
    _sre_parse = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python before 3.11 names them sre_constants, sre_parse
    _sre = _sre_parse = None

# Starts are cut to this many characters: long enough to be rare in a text, short enough to keep
# the sets small. A set larger than MAX_STARTS is cut shorter until it fits (shorter starts only
# mean more places to try, never a missed match).
MAX_START_CHARS = 8
MAX_STARTS = 48


def literal_starts(pattern: str) -> frozenset[str] | None:
    """Non-empty strings one of which every match of ``pattern`` starts with; None if unknown."""
    if _sre_parse is None:
        return None
    try:
        parsed = _sre_parse.parse(pattern)
    except re.error:
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    starts = _starts(list(parsed), MAX_START_CHARS)
    if starts is None or "" in starts:
        return None
    return frozenset(starts)


def _starts(items: list, budget: int) -> set[str] | None:
    """Starts (at most ``budget`` characters) of every match of the sequence ``items``. ``""`` in the
    set means a match may be empty there or the budget ran out: "anything may follow"."""
    if budget == 0 or not items:
        return {""}
    op, argument = items[0]
    rest = items[1:]
    found: set[str] | None
    if op is _sre.LITERAL or op is _sre.IN:
        heads = _characters(op, argument)
        if heads is None:
            return None
        tails = _starts(rest, budget - 1)
        found = heads if tails is None else {head + tail for head in heads for tail in tails}
    elif op is _sre.AT or op is _sre.ASSERT_NOT or (op is _sre.ASSERT and argument[0] < 0):
        return _starts(rest, budget)  # zero-width tests only narrow where a match may start
    elif op is _sre.ASSERT:  # a look-ahead: what it sees starts the match
        ahead = _starts(list(argument[1]), budget)
        found = ahead if ahead is not None and "" not in ahead else _starts(rest, budget)
    elif op is _sre.SUBPATTERN:
        _, add_flags, remove_flags, inner = argument
        return None if add_flags or remove_flags else _starts(list(inner) + rest, budget)
    elif op is _sre.BRANCH:
        found = set()
        for branch in argument[1]:
            branch_starts = _starts(list(branch) + rest, budget)
            if branch_starts is None:
                return None
            found |= branch_starts
    elif op is _sre.MAX_REPEAT or op is _sre.MIN_REPEAT:
        low, high, inner = argument
        # One repetition, then the repeat with one fewer (an unbounded one stays unbounded).
        fewer = [] if high == 1 else [(op, (max(low - 1, 0), high if high == _sre.MAXREPEAT else high - 1, inner))]
        once = _starts(list(inner) + fewer + rest, budget)
        if low > 0 or once is None:
            return once
        skipped = _starts(rest, budget)
        found = None if skipped is None else once | skipped
    else:
        return None
    return None if found is None else _fit(found)


def _characters(op, argument) -> set[str] | None:
    """The characters a LITERAL or a class of plain characters (``[- ]``) stands for."""
    if op is _sre.LITERAL:
        return {chr(argument)}
    if argument and all(kind is _sre.LITERAL for kind, _ in argument):
        return {chr(code) for _, code in argument}
    return None  # ranges, categories (\w, \s), negated classes


def _fit(starts: set[str]) -> set[str] | None:
    """Drop starts that extend a shorter one (it already covers them); shorten until few enough."""
    length = MAX_START_CHARS
    kept = _without_extensions(starts)
    while len(kept) > MAX_STARTS and length > 1:
        length -= 1
        kept = _without_extensions({start[:length] for start in kept})
    return kept if len(kept) <= MAX_STARTS else None


def _without_extensions(starts: set[str]) -> set[str]:
    kept: list[str] = []
    for start in sorted(starts):  # a string sorts right after its own prefixes
        if not (kept and start.startswith(kept[-1])):
            kept.append(start)
    return set(kept)
