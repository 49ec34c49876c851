"""How much readers agree on region-word verdicts: percent agreement, Cohen's and Fleiss' kappa.

All three verdicts (``bad match``, ``good match``, ``unsure``) are categories; ``unsure`` is not
dropped, because readers disagreeing on whether a pair is judgeable is disagreement too.

Kappa is undefined when chance agreement is 1 (every rating in one category, so there is nothing to
agree on beyond chance): these functions return ``nan`` then, as scikit-learn and statsmodels do,
and the report's percent agreement still says how often readers agreed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Hashable, Iterable, Sequence

from lrclr.annotations.store import VERDICTS, Verdict


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels on the same items: (po - pe) / (1 - pe).

    po is the share of items with equal labels, pe the agreement expected if each rater drew
    labels independently at their own rates. ``nan`` when pe == 1 (both used one same label).
    """
    if len(a) != len(b):
        raise ValueError(f"the raters labelled different numbers of items ({len(a)} and {len(b)})")
    if not a:
        raise ValueError("kappa needs at least one item")
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    pe = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    return math.nan if math.isclose(pe, 1.0) else (po - pe) / (1 - pe)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items x categories table of rating counts (Fleiss 1971).

    Every item must have the same number of ratings n >= 2. P_i = (sum_j n_ij^2 - n) / (n (n - 1))
    is item i's share of agreeing rater pairs, p_j category j's share of all ratings;
    kappa = (mean P_i - sum p_j^2) / (1 - sum p_j^2), ``nan`` when sum p_j^2 == 1.
    """
    rows = [list(row) for row in table]
    if not rows:
        raise ValueError("kappa needs at least one item")
    if any(value < 0 for row in rows for value in row) or len({len(row) for row in rows}) != 1:
        raise ValueError("the table must have one row of non-negative counts per item, all the same length")
    n = sum(rows[0])
    if n < 2 or any(sum(row) != n for row in rows):
        raise ValueError(f"every item needs the same number of ratings (>= 2); got {sorted({sum(r) for r in rows})}")
    items = len(rows)
    p = [sum(row[j] for row in rows) / (items * n) for j in range(len(rows[0]))]
    p_bar = sum((sum(v * v for v in row) - n) / (n * (n - 1)) for row in rows) / items
    pe = sum(share * share for share in p)
    return math.nan if math.isclose(pe, 1.0) else (p_bar - pe) / (1 - pe)


@dataclass(frozen=True)
class PairAgreement:
    """Two annotators on the pairs both judged."""

    annotator_a: str
    annotator_b: str
    items: int
    percent_agreement: float  # 0-100
    kappa: float  # Cohen's; nan when undefined


@dataclass(frozen=True)
class AgreementReport:
    items: int  # region-word pairs judged by >= 2 annotators
    annotators: tuple[str, ...]
    percent_agreement: float  # 0-100: agreeing rater pairs / all rater pairs, averaged over items
    pairs: tuple[PairAgreement, ...]  # every annotator pair with at least one item in common
    fleiss_kappa: float  # over fleiss_items only; nan when undefined or no such items
    fleiss_raters: int  # the rater count those items share (0: none)
    fleiss_items: int


def pairwise_agreement(verdicts: Iterable[Verdict], categories: Sequence[str] = VERDICTS) -> AgreementReport:
    """Agreement over the region-word pairs (``PairKey.identity``) that >= 2 annotators judged.

    Fleiss' kappa needs the same number of raters on every item, so it is computed over the items
    with the most common rater count (ties: the larger count) and the others are left out of it;
    ``fleiss_raters`` and ``fleiss_items`` say which. Cohen's kappa and percent agreement use every
    shared item.
    """
    by_item: dict[tuple, dict[str, str]] = {}
    for v in verdicts:
        by_item.setdefault(v.pair.identity, {})[v.annotator] = v.verdict
    shared = [labels for labels in by_item.values() if len(labels) >= 2]
    annotators = tuple(sorted({name for labels in shared for name in labels}))
    pairs = []
    for a, b in combinations(annotators, 2):
        both = [(labels[a], labels[b]) for labels in shared if a in labels and b in labels]
        if both:
            first, second = zip(*both)
            agree = 100.0 * sum(x == y for x, y in both) / len(both)
            pairs.append(PairAgreement(a, b, len(both), agree, cohen_kappa(first, second)))
    percent = 100.0 * sum(_agreeing_share(labels) for labels in shared) / len(shared) if shared else math.nan
    raters = max(Counter(len(labels) for labels in shared).items(), key=lambda kv: (kv[1], kv[0]))[0] if shared else 0
    table = [[list(labels.values()).count(c) for c in categories] for labels in shared if len(labels) == raters]
    kappa = fleiss_kappa(table) if table else math.nan
    return AgreementReport(len(shared), annotators, percent, tuple(pairs), kappa, raters, len(table))


def _agreeing_share(labels: dict[str, str]) -> float:
    pairs = list(combinations(labels.values(), 2))
    return sum(x == y for x, y in pairs) / len(pairs)
