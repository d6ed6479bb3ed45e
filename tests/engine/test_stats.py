"""Statistics against hand-computed nearest-rank values."""

from __future__ import annotations

import pytest

from app.engine import stats


def test_nearest_rank_matches_hand_computed_values() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    # rank = ceil(n * p / 100): p50 -> 5th, p90 -> 9th, p95 -> ceil(9.5) = 10th, p1 -> 1st
    assert stats.nearest_rank(values, 50) == 5.0
    assert stats.nearest_rank(values, 90) == 9.0
    assert stats.nearest_rank(values, 95) == 10.0
    assert stats.nearest_rank(values, 1) == 1.0
    assert stats.nearest_rank(values, 100) == 10.0


def test_nearest_rank_odd_count_and_no_interpolation() -> None:
    values = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4]  # n = 7
    assert stats.nearest_rank(values, 50) == 0.8  # ceil(3.5) = 4th
    assert stats.nearest_rank(values, 90) == 6.4  # ceil(6.3) = 7th
    assert stats.nearest_rank(values, 25) == 0.2  # ceil(1.75) = 2nd


def test_nearest_rank_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        stats.nearest_rank([], 50)
    with pytest.raises(ValueError):
        stats.nearest_rank([1.0], 0)


def test_latency_stats_sorts_and_keeps_sub_millisecond_precision() -> None:
    latencies = [0.0123456, 0.0098765, 0.0311111, 0.0200001]
    result = stats.latency_stats(latencies, percentile=75)
    assert result is not None
    assert result.min == 0.0098765
    assert result.max == 0.0311111
    assert result.median == 0.0123456  # ceil(2.0) = 2nd of the sorted four
    assert result.at_percentile == 0.0200001  # ceil(3.0) = 3rd
    assert result.percentile == 75
    assert result.mean == pytest.approx(sum(latencies) / 4, rel=1e-12)
    # sample standard deviation
    mean = sum(latencies) / 4
    expected_stdev = (sum((x - mean) ** 2 for x in latencies) / 3) ** 0.5
    assert result.stdev == pytest.approx(expected_stdev, rel=1e-9)


def test_latency_stats_single_value_and_empty() -> None:
    one = stats.latency_stats([2.5])
    assert one is not None and one.stdev == 0.0 and one.p99 == 2.5
    assert stats.latency_stats([]) is None


def test_throughput_is_batch_times_iterations_over_duration() -> None:
    assert stats.throughput_fps(batch_size=4, iterations=250, duration_s=2.0) == 500.0
    assert stats.throughput_fps(batch_size=1, iterations=10, duration_s=0.0) == 0.0


def test_timeline_buckets_by_second_with_short_last_bucket() -> None:
    completions = [0.1, 0.2, 0.9, 1.5, 2.1, 2.4]
    latencies = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0]
    points = stats.timeline(completions, latencies, duration_s=2.5, batch_size=2)
    assert [p.second for p in points] == [0, 1, 2]
    assert [p.iterations for p in points] == [3, 1, 2]
    assert points[0].median_latency_ms == 2.0
    assert points[0].throughput_fps == 6.0  # 3 requests x batch 2 in 1 s
    assert points[2].throughput_fps == pytest.approx(8.0)  # 2 x 2 in the last 0.5 s
    assert points[2].median_latency_ms == 4.0


def test_timeline_empty_second_has_no_median() -> None:
    points = stats.timeline([0.5, 2.5], [1.0, 1.0], duration_s=3.0, batch_size=1)
    assert points[1].iterations == 0 and points[1].median_latency_ms is None


def test_timeline_folds_a_short_tail_into_the_last_second() -> None:
    # 2.05 s run: the last 50 ms (requests still in flight at the end) join second 1
    points = stats.timeline(
        [0.5, 1.5, 2.04, 2.05], [1.0, 2.0, 3.0, 4.0], duration_s=2.05, batch_size=1
    )
    assert [p.second for p in points] == [0, 1]
    assert points[1].iterations == 3
    assert points[1].throughput_fps == pytest.approx(3 / 1.05)
