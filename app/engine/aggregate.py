"""A metric across a job's repeats: median, min, max, CV and a confidence interval of the median.

The interval is distribution-free, from order statistics: for n sorted values x_(1)..x_(n),
the pair (x_(j), x_(n-j+1)) covers the true median with probability
1 - 2 * P(Binomial(n, 1/2) <= j - 1). We take the narrowest such pair (the largest j) that
covers at least 95%. Up to 5 values no pair reaches 95%: the interval is then min..max with
its real coverage (0.9375 for 5 values, 0.875 for 4, 0.75 for 3, 0.5 for 2). With 6 to 8
values min..max already covers 95% or more; from 9 values on the interval moves inward.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from fractions import Fraction

from app.engine.integrity import RepeatAggregate, Spread
from app.engine.spec import RunFigures

CONFIDENCE = 0.95
METHOD = (
    "Median of the repeats, with a distribution-free confidence interval of the median from "
    "order statistics (binomial): the narrowest pair x_(j), x_(n-j+1) of the sorted values "
    "that covers at least 95%, or min..max with its real coverage below 6 repeats. "
    "CV: sample standard deviation / mean."
)


def order_statistic_coverage(count: int, j: int) -> Fraction:
    """Exact coverage of (x_(j), x_(count-j+1)) for the median.

    1 - 2 * BinomCDF(j-1; count, 1/2): the median lies outside when j-1 or fewer values fall
    below it (or above it)."""
    if not 1 <= j <= (count + 1) // 2:
        raise ValueError(f"j must be in 1..{(count + 1) // 2} for {count} values, got {j}")
    below = sum(math.comb(count, i) for i in range(j))
    return 1 - Fraction(2 * below, 2**count)


def median_interval_ranks(count: int, confidence: float = CONFIDENCE) -> tuple[int, Fraction]:
    """(j, coverage): the largest j whose pair covers at least `confidence` (j = 1 if none does)."""
    if count < 2:
        raise ValueError("an interval needs at least 2 values")
    best = 1
    for j in range(2, (count + 1) // 2 + 1):
        if order_statistic_coverage(count, j) >= confidence:
            best = j
        else:
            break
    return best, order_statistic_coverage(count, best)


def spread(values: Sequence[float]) -> Spread:
    """Median, min, max, CV (sample stdev / mean) and the order-statistic interval of the median."""
    if not values:
        raise ValueError("spread needs at least one value")
    ordered = sorted(values)
    count = len(ordered)
    mean = math.fsum(ordered) / count
    cv = statistics.stdev(ordered) / mean if count > 1 and mean > 0 else 0.0
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    if count >= 2:
        j, coverage = median_interval_ranks(count)
        ci_low, ci_high, confidence = ordered[j - 1], ordered[count - j], float(coverage)
    return Spread(
        median=statistics.median(ordered),
        min=ordered[0],
        max=ordered[-1],
        cv=cv,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
    )


def median_run_index(throughputs_fps: Sequence[float]) -> int:
    """0-based index of the run with the median throughput.

    For an even count, the lower of the two middle values; among runs with that value, the
    first.
    """
    if not throughputs_fps:
        raise ValueError("median_run_index needs at least one run")
    middle = sorted(throughputs_fps)[(len(throughputs_fps) - 1) // 2]
    return list(throughputs_fps).index(middle)


def aggregate(runs: Sequence[RunFigures]) -> RepeatAggregate | None:
    """The repeats' throughput and median latency as spreads; None for fewer than 2 runs.

    latency_median_ms is over each run's median latency, and null if any run has none.
    """
    if len(runs) < 2:
        return None
    medians = [run.latency_ms.median for run in runs if run.latency_ms is not None]
    return RepeatAggregate(
        repeats=len(runs),
        throughput_fps=spread([run.throughput_fps for run in runs]),
        latency_median_ms=spread(medians) if len(medians) == len(runs) else None,
        method=METHOD,
        median_run=median_run_index([run.throughput_fps for run in runs]),
    )
