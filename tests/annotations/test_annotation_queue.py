"""The Annotate page's queue of region-word pairs."""

from __future__ import annotations

from lrclr.annotations.queue import build_queue
from tests.support.explanations import made_explanation as _explanation


def test_the_queue_puts_the_strongest_pairs_first_and_skips_function_words():
    # The test explanation splits words at spaces; even-indexed words put attention (1.0, 0.0) on
    # regions 1 and 2, odd ones (0.25, 0.75). "." is a word there but not a judgeable one.
    report = "Small effusion . The heart was big ."
    queue = build_queue(_explanation(report, {}))
    # Each region's strongest pair first, then each region's next (issue #19: region 1 took the
    # first dozen pairs); within a region, highest attention first.
    assert [(i.word.text, i.region.rank, i.attention) for i in queue[:4]] == [
        ("Small", 1, 1.0), ("effusion", 2, 0.75), ("heart", 1, 1.0), ("Small", 2, 0.0)]
    assert not {"The", "was", "."} & {i.word.text for i in queue}
    for rank in {i.region.rank for i in queue}:
        mine = [i.attention for i in queue if i.region.rank == rank]
        assert mine == sorted(mine, reverse=True)


def test_the_queue_moves_between_regions_and_keeps_the_strongest_pairs():
    report = "Small effusion . The heart was big . Mild edema and a large nodule"
    everything = build_queue(_explanation(report, {}), length=1000)
    short = build_queue(_explanation(report, {}), length=6)
    strongest = sorted(everything, key=lambda i: -i.attention)[:6]
    assert sorted(i.attention for i in short) == sorted(i.attention for i in strongest)
    assert len({i.region.rank for i in short[:2]}) == 2  # the first two pairs are on different regions


def test_each_pair_carries_its_sentence_with_the_word_span_inside_it():
    queue = build_queue(_explanation("Small effusion . The heart was big .", {}))
    for item in queue:
        start, end = item.word_in_sentence
        assert item.sentence[start:end] == item.word.text
    assert {i.sentence for i in queue} == {"Small effusion .", "The heart was big ."}


def test_the_queue_is_cut_to_length_and_empty_for_a_model_without_regions():
    assert len(build_queue(_explanation("Small effusion. The heart is big.", {}), length=2)) == 2
    assert build_queue(_explanation("Small effusion.", {}, with_regions=False)) == []
