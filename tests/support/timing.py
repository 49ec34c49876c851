"""Cost checks that hold on a fast machine and on a slow, busy one alike."""

from __future__ import annotations


def growth_ratio(work, small, large, repeats: int = 3) -> float:
    """How much longer ``work(large)`` takes than ``work(small)`` (medians of ``repeats`` runs).

    A cost check, not a speed check: against a size ratio of 10, linear work gives about 10 and
    quadratic work 100, on a fast machine or a slow, busy one alike. ``small`` and ``large`` are
    functions of the repeat number, so that no run can reuse a cache filled by another.
    """
    import statistics
    import time

    def median_seconds(make_input) -> float:
        times = []
        for repeat in range(repeats):
            argument = make_input(repeat)
            start = time.perf_counter()
            work(argument)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return median_seconds(large) / median_seconds(small)
