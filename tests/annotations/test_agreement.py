"""Agreement statistics, checked against examples worked by hand."""

from __future__ import annotations

import math

import pytest

from lrclr.annotations.agreement import cohen_kappa, fleiss_kappa, pairwise_agreement
from lrclr.annotations.records import PairKey, Verdict, sha256_hex

B, G, U = "bad match", "good match", "unsure"


def test_cohen_kappa_on_a_hand_computed_example():
    # 10 pairs, two readers:
    #   a: B B B B B G G G U U
    #   b: B B B G B G G U U B
    # equal on items 1, 2, 3, 5, 6, 7, 9 -> po = 7/10 = 0.70
    # a: B 5, G 3, U 2; b: B 5, G 3, U 2 -> pe = (5*5 + 3*3 + 2*2) / 10^2 = 38/100 = 0.38
    # kappa = (0.70 - 0.38) / (1 - 0.38) = 0.32 / 0.62 = 0.516129...
    a = [B, B, B, B, B, G, G, G, U, U]
    b = [B, B, B, G, B, G, G, U, U, B]
    assert cohen_kappa(a, b) == pytest.approx(0.32 / 0.62)
    assert cohen_kappa(b, a) == pytest.approx(0.32 / 0.62)


def test_cohen_kappa_on_the_textbook_yes_no_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> po = 35/50 = 0.7;
    # a says yes 25/50, b 30/50 -> pe = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa = 0.2/0.5 = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    a = [B, G, U, B, B, G, U, U, G, B, B, G]
    b = [B, G, B, B, U, G, U, G, G, B, U, G]
    assert cohen_kappa(a, b) == pytest.approx(metrics.cohen_kappa_score(a, b))


def test_cohen_kappa_degenerate_cases():
    assert cohen_kappa([B, G, U], [B, G, U]) == 1.0
    # everyone says the same thing: pe = 1, kappa = 0/0 -> undefined, reported as nan
    assert math.isnan(cohen_kappa([G] * 5, [G] * 5))
    assert cohen_kappa([G, B], [B, G]) == pytest.approx(-1.0)
    assert cohen_kappa([G] * 4, [G, G, G, B]) == pytest.approx(0.0)  # pe = po = 0.75
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa([B], [B, G])
    with pytest.raises(ValueError, match="at least one"):
        cohen_kappa([], [])


# Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories.
# p_j = 0.143, 0.200, 0.279, 0.150, 0.229 -> Pe = sum p_j^2 = 0.213
# P_i = 1.000, 0.253, 0.308, 0.440, 0.330, 0.462, 0.242, 0.176, 0.286, 0.286 -> mean 0.378
# kappa = (0.378 - 0.213) / (1 - 0.213) = 0.210
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_on_the_classic_example():
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-5)
    assert round(fleiss_kappa(FLEISS_TABLE), 3) == 0.210


def test_fleiss_kappa_with_two_raters_is_scotts_pi():
    # Two raters: a = B B G G, b = B G G G -> table rows [2,0], [1,1], [0,2], [0,2]
    # P_i = 1, 0, 1, 1 -> mean 0.75; p = 3/8, 5/8 -> Pe = 9/64 + 25/64 = 34/64
    # kappa = (48/64 - 34/64) / (30/64) = 14/30
    assert fleiss_kappa([[2, 0], [1, 1], [0, 2], [0, 2]]) == pytest.approx(14 / 30)


def test_fleiss_kappa_degenerate_cases():
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]]) == 1.0
    assert math.isnan(fleiss_kappa([[0, 4, 0], [0, 4, 0]]))
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[2, 1], [1, 1]])
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="at least one"):
        fleiss_kappa([])


HASH = sha256_hex("x")


def _verdict(annotator: str, item: int, label: str) -> Verdict:
    pair = PairKey("m", "case", HASH, HASH, item, f"w{item}", 10 * item, 10 * item + 3, 1, 0, 0, (0, 0, 1, 1))
    return Verdict(0, annotator, pair, label, "", "t", "t", 1)


def test_pairwise_agreement_on_a_hand_computed_example():
    labels = {  # item: readers a, b, c (None = not judged)
        0: (B, B, B),
        1: (B, G, B),
        2: (G, G, G),
        3: (U, G, U),
        4: (B, B, None),
        5: (G, None, None),  # one reader only: not an agreement item
    }
    verdicts = [_verdict(name, item, label) for item, row in labels.items()
                for name, label in zip("abc", row) if label is not None]
    report = pairwise_agreement(verdicts)
    assert (report.items, report.annotators) == (5, ("a", "b", "c"))
    # agreeing reader pairs per item: 3/3, 1/3, 3/3, 1/3, 1/1 -> mean 11/15
    assert report.percent_agreement == pytest.approx(100 * 11 / 15)
    pairs = {(p.annotator_a, p.annotator_b): p for p in report.pairs}
    # a-b on items 0-4: a = B B G U B, b = B G G G B -> po = 3/5; pe = (3*2 + 1*3 + 1*0)/25 = 9/25
    # kappa = (15/25 - 9/25) / (16/25) = 6/16 = 0.375
    assert (pairs["a", "b"].items, pairs["a", "b"].percent_agreement) == (5, pytest.approx(60.0))
    assert pairs["a", "b"].kappa == pytest.approx(0.375)
    assert (pairs["a", "c"].items, pairs["a", "c"].kappa) == (4, 1.0)
    # b-c on items 0-3: b = B G G G, c = B B G U -> po = 1/2; pe = (1*2 + 3*1)/16 = 5/16
    # kappa = (8/16 - 5/16) / (11/16) = 3/11
    assert pairs["b", "c"].kappa == pytest.approx(3 / 11)
    # Fleiss over the four 3-reader items (item 4 has 2 readers and is left out):
    # rows [3,0,0], [2,1,0], [0,3,0], [0,1,2]; P_i = 1, 1/3, 1, 1/3 -> mean 2/3
    # p = 5/12, 5/12, 2/12 -> Pe = 54/144 = 3/8; kappa = (2/3 - 3/8) / (5/8) = 7/15
    assert (report.fleiss_raters, report.fleiss_items) == (3, 4)
    assert report.fleiss_kappa == pytest.approx(7 / 15)


def test_pairwise_agreement_degenerate_cases():
    empty = pairwise_agreement([])
    assert (empty.items, empty.pairs, empty.fleiss_items, empty.fleiss_raters) == (0, (), 0, 0)
    assert math.isnan(empty.percent_agreement) and math.isnan(empty.fleiss_kappa)

    alone = pairwise_agreement([_verdict("a", i, B) for i in range(3)])
    assert alone.items == 0 and alone.pairs == ()

    unanimous = pairwise_agreement([_verdict(name, i, G) for name in "ab" for i in range(4)])
    assert unanimous.percent_agreement == 100.0
    assert math.isnan(unanimous.pairs[0].kappa) and math.isnan(unanimous.fleiss_kappa)

    # two items with 2 readers and two with 3: the tie goes to the larger count
    mixed = [_verdict(name, i, B if i % 2 else G) for i in range(4) for name in ("ab" if i < 2 else "abc")]
    report = pairwise_agreement(mixed)
    assert (report.fleiss_raters, report.fleiss_items, report.fleiss_kappa) == (3, 2, 1.0)


def test_a_later_verdict_from_the_same_reader_replaces_the_earlier_one():
    verdicts = [_verdict("a", 0, B), _verdict("b", 0, G), _verdict("b", 0, B)]
    report = pairwise_agreement(verdicts)
    assert report.percent_agreement == 100.0
