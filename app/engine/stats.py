"""Pure statistics over per-request latencies: nearest-rank percentiles and a per-second timeline.

benchmark_app computes its "median" as `sorted[ceil(n * p / 100) - 1]` (nearest rank, no
interpolation); we do the same so our figures line up, and keep full float precision.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from app.engine.spec import LatencyStats, TimelinePoint

_MIN_TAIL_S = 0.25


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of already sorted values (benchmark_app's `percentile`)."""
    if not sorted_values:
        raise ValueError("nearest_rank needs at least one value")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    rank = math.ceil(len(sorted_values) * percent / 100)
    return sorted_values[max(rank, 1) - 1]


def latency_stats(latencies_ms: Sequence[float], percentile: int = 50) -> LatencyStats | None:
    """Summary of per-request latencies; None when there are none (a run cancelled at once)."""
    if not latencies_ms:
        return None
    values = sorted(latencies_ms)
    return LatencyStats(
        median=nearest_rank(values, 50),
        mean=math.fsum(values) / len(values),
        min=values[0],
        max=values[-1],
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        p90=nearest_rank(values, 90),
        p95=nearest_rank(values, 95),
        p99=nearest_rank(values, 99),
        percentile=percentile,
        at_percentile=nearest_rank(values, percentile),
    )


def throughput_fps(batch_size: int, iterations: int, duration_s: float) -> float:
    """benchmark_app's formula: frames (batch x iterations) over the whole measured duration."""
    if duration_s <= 0:
        return 0.0
    return batch_size * iterations / duration_s


def timeline(
    completions_s: Sequence[float],
    latencies_ms: Sequence[float],
    duration_s: float,
    batch_size: int,
) -> list[TimelinePoint]:
    """Per-second buckets of the run: requests completed, their throughput and median latency.

    `completions_s[i]` is when request i was seen complete, in seconds since the run started,
    and `latencies_ms[i]` its latency. The last bucket may be shorter than a second: its
    throughput is computed over its real length (a tail under 0.25 s is folded into it).
    """
    if len(completions_s) != len(latencies_ms):
        raise ValueError("completions and latencies must pair up")
    # A tail shorter than _MIN_TAIL_S (the last requests coming back) joins the second before
    # it rather than showing as a bucket of a few requests over a few milliseconds.
    n_buckets = max(1, math.ceil(duration_s - _MIN_TAIL_S))
    buckets: list[list[float]] = [[] for _ in range(n_buckets)]
    for t, lat in zip(completions_s, latencies_ms, strict=True):
        index = min(int(t), n_buckets - 1)
        buckets[index].append(lat)
    points = []
    for second, lats in enumerate(buckets):
        last = second == n_buckets - 1
        length_s = max(duration_s - second, 0.0) if last else 1.0
        lats.sort()
        points.append(
            TimelinePoint(
                second=second,
                iterations=len(lats),
                throughput_fps=batch_size * len(lats) / length_s if length_s > 0 else 0.0,
                median_latency_ms=nearest_rank(lats, 50) if lats else None,
            )
        )
    return points
