"""Repeats: spreads, exact order-statistic coverage, and which run is the median one."""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import pytest

from app.engine import aggregate
from app.engine.integrity import StabilityRules
from app.engine.spec import LatencyStats, RunFigures
from app.engine.steady import steady_state


def run(fps: float, latency_median_ms: float | None = 10.0) -> RunFigures:
    latency = None
    if latency_median_ms is not None:
        m = latency_median_ms
        latency = LatencyStats(
            median=m, mean=m, min=m, max=m, stdev=0.0, p90=m, p95=m, p99=m,
            percentile=50, at_percentile=m,
        )  # fmt: skip
    return RunFigures(
        throughput_fps=fps,
        latency_ms=latency,
        iterations=int(fps),
        duration_ms=1000.0,
        timeline=[],
        steady_state=steady_state([], StabilityRules()),
    )


def test_coverage_is_exact_binomial() -> None:
    # 1 - 2 * P(Bin(n, 1/2) <= j - 1)
    assert aggregate.order_statistic_coverage(5, 1) == Fraction(15, 16)  # 0.9375
    assert aggregate.order_statistic_coverage(10, 2) == Fraction(1002, 1024)  # 1 - 22/1024
    assert aggregate.order_statistic_coverage(10, 3) == Fraction(912, 1024)  # 1 - 112/1024
    assert aggregate.order_statistic_coverage(2, 1) == Fraction(1, 2)
    with pytest.raises(ValueError):
        aggregate.order_statistic_coverage(5, 4)


@pytest.mark.parametrize(
    ("count", "j", "coverage"),
    [
        (2, 1, 0.5),
        (3, 1, 0.75),
        (4, 1, 0.875),
        (5, 1, 0.9375),  # too few for 95%: min..max, with its real coverage
        (6, 1, 0.96875),
        (8, 1, 0.9921875),
        (9, 2, 1 - 20 / 512),
        (10, 2, 0.978515625),
        (20, 6, 1 - 2 * sum(math.comb(20, i) for i in range(6)) / 2**20),
    ],
)
def test_narrowest_pair_reaching_95_percent(count: int, j: int, coverage: float) -> None:
    found_j, found = aggregate.median_interval_ranks(count)
    assert (found_j, float(found)) == (j, pytest.approx(coverage, abs=1e-15))
    if count >= 6:
        assert found >= 0.95
    # the next pair inward no longer reaches 95%
    if found_j + 1 <= (count + 1) // 2:
        assert aggregate.order_statistic_coverage(count, found_j + 1) < 0.95


def test_spread_of_five_uses_min_and_max() -> None:
    values = [20.0, 18.0, 19.0, 21.0, 19.5]
    s = aggregate.spread(values)
    assert (s.median, s.min, s.max) == (19.5, 18.0, 21.0)
    assert (s.ci_low, s.ci_high, s.confidence) == (18.0, 21.0, 0.9375)
    assert s.cv == pytest.approx(statistics.stdev(values) / statistics.fmean(values))


def test_spread_of_ten_uses_the_second_and_ninth_values() -> None:
    values = [float(v) for v in (7, 3, 10, 1, 5, 9, 2, 8, 6, 4)]
    s = aggregate.spread(values)
    assert s.median == 5.5  # the two middle values averaged
    assert (s.ci_low, s.ci_high) == (2.0, 9.0)
    assert s.confidence == 0.978515625


def test_spread_of_one_value_has_no_interval() -> None:
    s = aggregate.spread([42.0])
    assert (s.median, s.cv, s.ci_low, s.ci_high, s.confidence) == (42.0, 0.0, None, None, None)


@pytest.mark.parametrize(
    ("throughputs", "index"),
    [
        ([30.0, 10.0, 20.0], 2),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 4),
        ([10.0, 40.0, 30.0, 20.0], 3),  # even: the lower of the two middle (20, not 30)
        ([7.0, 7.0, 7.0], 0),  # ties: the first
        ([9.0, 8.0, 8.0, 1.0], 1),
        ([3.0], 0),
    ],
)
def test_median_run_index(throughputs: list[float], index: int) -> None:
    assert aggregate.median_run_index(throughputs) == index


def test_aggregate_over_runs() -> None:
    runs = [run(100.0, 10.0), run(90.0, 11.0), run(110.0, 9.0), run(95.0, 10.5)]
    agg = aggregate.aggregate(runs)
    assert agg is not None
    assert agg.repeats == 4
    assert agg.throughput_fps.median == 97.5
    assert agg.latency_median_ms is not None and agg.latency_median_ms.median == 10.25
    assert agg.median_run == 3  # 95 is the lower middle of 90, 95, 100, 110
    assert "order statistics" in agg.method


def test_aggregate_needs_two_runs_and_latency_in_every_run() -> None:
    assert aggregate.aggregate([run(100.0)]) is None
    agg = aggregate.aggregate([run(100.0), run(90.0, None), run(95.0)])
    assert agg is not None and agg.latency_median_ms is None
