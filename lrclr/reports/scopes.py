"""Where things are in one text, found once and then looked up by bisection.

The labeler decides each finding mention from what surrounds it: the clause it sits in (cue
scopes stop at clause edges), the nearest cue, the nearest laterality or zone word, and the
stretch not closer to another mention. Rescanning the text for each mention made labelling
quadratic in sentence length; these tables make each lookup a bisection.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from lrclr.reports.edge_patterns import TextScan


@dataclass(frozen=True)
class Edges:
    """Where a text's spans start and end, sorted: the clause boundaries (cue scopes stop at
    them), or the finding mentions (a laterality word belongs to the nearest one). ``around`` a
    stretch is a bisection each way, not a rescan of the text (a rescan per mention made
    labelling quadratic in sentence length)."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    length: int

    @classmethod
    def of_boundaries(cls, scan: TextScan, boundary) -> "Edges":
        spans = [m.span() for m in scan.finditer(boundary)]
        return cls(tuple(s for s, _ in spans), tuple(e for _, e in spans), len(scan.text))

    @classmethod
    def of_mentions(cls, all_triggers, length: int) -> "Edges":
        """Each mention from its first trigger's start to its last trigger's end."""
        return cls(tuple(sorted(t[0][0] for t in all_triggers)), tuple(sorted(t[-1][1] for t in all_triggers)), length)

    def around(self, start: int, end: int) -> tuple[int, int]:
        """From the last end at or before ``start`` to the first start at or after ``end``: the
        clause around [start, end), or the stretch not closer to another mention ("right basilar
        atelectasis, no pneumothorax" gives the pneumothorax no side). A mention's own edges
        never count: its end lies after its start, its start before its end."""
        before = bisect_right(self.ends, start)
        after = bisect_left(self.starts, end)
        return (self.ends[before - 1] if before else 0,
                self.starts[after] if after < len(self.starts) else self.length)


@dataclass(frozen=True)
class Cues:
    """A text's cues, (start, end, kind, "pre" or "post") each, sorted by start, so that a mention
    looks only at the cues near it in its clause (looking at all of them made labelling quadratic
    in sentence length). Each keeps its place in the order they were found: between equally near
    cues the first wins."""

    cues: tuple[tuple[int, int, str, str, int], ...]  # (start, end, kind, position, order found)
    starts: tuple[int, ...]
    longest: int  # the longest cue's length: how far before its end a cue can start

    @classmethod
    def of(cls, cues: list[tuple[int, int, str, str]]) -> "Cues":
        ordered = _by_start_keeping_order(cues)
        return cls(ordered, tuple(cue[0] for cue in ordered), max((e - s for s, e, _, _ in cues), default=0))

    def nearest(self, triggers, clause_start: int, clause_end: int):
        """(kind, span) of the cue nearest to ``triggers`` that governs them in their clause: a
        pre-cue before the last trigger word or a post-cue after the first, overlapping none."""
        first, last = triggers[0], triggers[-1]
        low = bisect_left(self.starts, clause_start)
        high = bisect_right(self.starts, clause_end)
        best = None
        # Pre-cues, from the last trigger word backwards: none starting further back can be nearer.
        for index in range(bisect_left(self.starts, last[0], low, high) - 1, low - 1, -1):
            start, end, kind, where, order = self.cues[index]
            if best is not None and first[0] - (start + self.longest) > best[0]:
                break
            if where == "pre" and end <= last[0] and not _overlaps_any(start, end, triggers):
                best = _nearer(best, (max(0, first[0] - end), order, (start, end), kind))
        # Post-cues, from the first trigger word on: the distance only grows.
        for index in range(bisect_left(self.starts, first[1], low, high), high):
            start, end, kind, where, order = self.cues[index]
            if best is not None and start - last[1] > best[0]:
                break
            if where == "post" and end <= clause_end and not _overlaps_any(start, end, triggers):
                best = _nearer(best, (max(0, start - last[1]), order, (start, end), kind))
        return None if best is None else (best[3], best[2])


def _by_start_keeping_order(items: list) -> tuple:
    """(start, ...) tuples sorted by start, each with its place in ``items`` appended: the order
    found, which breaks ties between equally near ones."""
    return tuple(sorted((item + (order,) for order, item in enumerate(items)), key=lambda item: item[0]))


def _overlaps_any(start: int, end: int, spans) -> bool:
    return any(start < span_end and span_start < end for span_start, span_end in spans)


def _nearer(best, candidate):
    """The nearer of two (distance, order, ...) cues; at equal distance the one found first."""
    return candidate if best is None or candidate[:2] < best[:2] else best


@dataclass(frozen=True)
class Places:
    """A text's laterality or zone words, found once per text (not once per mention) and sorted by
    start; each keeps its place in table-then-text order, which breaks ties in ``nearest``."""

    places: tuple[tuple[int, int, str, int], ...]  # (start, end, name, order found)
    starts: tuple[int, ...]

    @classmethod
    def of(cls, scan: TextScan, table) -> "Places":
        ordered = _by_start_keeping_order([(m.start(), m.end(), name) for name, pattern in table
                                           for m in scan.finditer(pattern)])
        return cls(ordered, tuple(place[0] for place in ordered))

    def nearest(self, triggers, clause: tuple[int, int], window: tuple[int, int]) -> str:
        """The word nearest to the triggers, inside their clause and ``window`` (the stretch not
        closer to another finding's words), never one of the trigger words."""
        start, end = max(clause[0], window[0]), min(clause[1], window[1])
        best = None
        for place_start, place_end, name, order in self.places[bisect_left(self.starts, start):bisect_right(self.starts, end)]:
            if place_end > end or _overlaps_any(place_start, place_end, triggers):
                continue
            distance = min(abs(place_start - triggers[-1][1]), abs(triggers[0][0] - place_end))
            if best is None or (distance, order) < best[:2]:
                best = (distance, order, name)
        return best[2] if best else ""
