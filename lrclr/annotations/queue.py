"""The Annotate page's queue: which region-word pairs of a case an annotator judges, in what order.

Highest attention first, because the pairs the model leans on most are the ones whose mistakes
matter. Function words ("the", "is") are left out: nobody can say where "the" should look.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrclr.escaping import markdown_literal
from lrclr.model.explain import Explanation, RegionExplanation, WordExplanation
from lrclr.reports.text import split_sentences

DEFAULT_QUEUE_LENGTH = 30
# Words whose grounding has no meaning; kept short on purpose: negations and laterality stay in.
FUNCTION_WORDS = frozenset(
    "a an and are as at be been by for from has have in is it its of on or than that the there this "
    "to was were which with".split()
)


@dataclass(frozen=True)
class QueueItem:
    word: WordExplanation
    region: RegionExplanation
    attention: float  # the word's attention on this region (its attention over regions sums to 1)
    sentence: str  # the report sentence holding the word
    word_in_sentence: tuple[int, int]  # the word's span inside ``sentence``


def build_queue(explanation: Explanation, length: int = DEFAULT_QUEUE_LENGTH) -> list[QueueItem]:
    """The ``length`` strongest pairs over the whole report (highest attention), in an order that
    moves from region to region (``_regions_in_turn``); empty without regions."""
    if not explanation.regions:
        return []
    sentences = split_sentences(explanation.report)
    items = []
    for word in explanation.words:
        if word.region_attention is None or word.text.lower() in FUNCTION_WORDS or not word.text.isalpha():
            continue
        sentence = next((s for s in sentences if s.start <= word.start and word.end <= s.end), None)
        text, offset = (sentence.text, sentence.start) if sentence else (word.text, word.start)
        for region, attention in zip(explanation.regions, word.region_attention):
            items.append(QueueItem(word, region, float(attention), text,
                                   (word.start - offset, word.end - offset)))
    # Ties broken by report order, then rank, so the queue is stable between reruns.
    items.sort(key=lambda item: (-item.attention, item.word.index, item.region.rank))
    return _regions_in_turn(items[:length])


def _regions_in_turn(strongest: list[QueueItem]) -> list[QueueItem]:
    """The same pairs, ordered so that a session sees varied regions early: each region's strongest
    pair first (regions by their best pair), then each region's second, and so on. Highest-first
    alone put a dozen words on region 1 before any other region (issue #19)."""
    by_region: dict[int, list[QueueItem]] = {}
    for item in strongest:  # already strongest first, so each list is too
        by_region.setdefault(item.region.rank, []).append(item)
    rounds = max((len(items) for items in by_region.values()), default=0)
    return [items[turn] for turn in range(rounds) for items in by_region.values() if turn < len(items)]


def sentence_markdown(item: QueueItem) -> str:
    """The pair's sentence as Markdown with the word in bold; all report text escaped, so our bold
    is the only markup (the Annotate page shows it)."""
    start, end = item.word_in_sentence
    text = item.sentence
    return f"{markdown_literal(text[:start])}**{markdown_literal(text[start:end])}**{markdown_literal(text[end:])}"
