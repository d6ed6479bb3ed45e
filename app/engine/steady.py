"""Steady state of one measured run: where its warm-up ends, and its figures after it.

The warm-up rule (`rule_text`): warm-up ends at the first second k such that second k AND
second k+1 both have a throughput within ±steady_band of the median throughput of seconds
k..end, with at least `min_steady_s` seconds from k on. Requiring two seconds in a row keeps a
lucky second in the middle of a ramp from ending the warm-up; judging against the median of
what follows (not "every later second in band") keeps one slow second late in the run from
pushing the warm-up to the end. Seconds after k that leave the band are noise, not warm-up:
they stay in the steady figures (and raise their CV), so a disturbance is not hidden.

The last bucket of a timeline may be partial (`stats.timeline` gives it 0.25 to 1.25 s, its
throughput over its real length). It counts when it lasts at least 0.5 s, weighted by its
length in the mean throughput; a shorter one is left out (a few requests, so its throughput
jumps by a whole request's share). Its length comes from the run's `duration_s` when given,
otherwise from the timeline itself: a full second's throughput / iterations is the batch, and
the last bucket's length is batch x iterations / throughput.

Figures over the steady seconds: throughput_fps (frames / time: the seconds' throughput
weighted by their length), latency_median_ms (median of the seconds' median latencies), cv
(sample stdev / mean of the seconds' throughput, unweighted) and trend (least-squares slope of
throughput against the second, times the span, over the mean: +0.05 is 5% faster at the end).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from app.engine.integrity import StabilityRules, SteadyState
from app.engine.spec import TimelinePoint

MIN_LAST_BUCKET_S = 0.5


def _percent(share: float) -> str:
    return f"{share * 100:.3g}%"


def rule_text(rules: StabilityRules) -> str:
    """The warm-up rule in words, with its band (SteadyState.rule)."""
    return (
        f"Warm-up ends at the first second k where seconds k and k+1 both have a throughput "
        f"within ±{_percent(rules.steady_band)} of the median of seconds k to the end, with at "
        f"least {rules.min_steady_s} seconds from k on; later seconds outside the band count as "
        f"noise, not warm-up. A last bucket shorter than {MIN_LAST_BUCKET_S:g} s is left out."
    )


def _last_length_s(timeline: Sequence[TimelinePoint], duration_s: float | None) -> float:
    last = timeline[-1]
    if duration_s is not None:
        return max(duration_s - last.second, 0.0)
    if last.iterations == 0 or last.throughput_fps <= 0:
        return 1.0
    for point in timeline[:-1]:
        if point.iterations > 0 and point.throughput_fps > 0:
            batch = point.throughput_fps / point.iterations
            return batch * last.iterations / last.throughput_fps
    return 1.0  # one bucket only, or no full second with requests: take it as a second


def bucket_lengths_s(
    timeline: Sequence[TimelinePoint], duration_s: float | None = None
) -> list[float]:
    """Each bucket's length in seconds: 1 for all but the last (see the module docstring)."""
    if not timeline:
        return []
    return [1.0] * (len(timeline) - 1) + [_last_length_s(timeline, duration_s)]


def usable_seconds(
    timeline: Sequence[TimelinePoint], duration_s: float | None = None
) -> list[tuple[TimelinePoint, float]]:
    """The buckets the rule looks at, with their lengths: all but a last one under 0.5 s."""
    pairs = list(zip(timeline, bucket_lengths_s(timeline, duration_s), strict=True))
    if pairs and pairs[-1][1] < MIN_LAST_BUCKET_S:
        pairs.pop()
    return pairs


def warmup_end(throughputs_fps: Sequence[float], rules: StabilityRules) -> int | None:
    """Index of the first steady second by the warm-up rule; None when there is none."""
    count = len(throughputs_fps)
    band = rules.steady_band
    for k in range(0, count - rules.min_steady_s + 1):
        median = statistics.median(throughputs_fps[k:])
        if median <= 0:
            continue
        if all(abs(throughputs_fps[i] - median) <= band * median for i in (k, k + 1)):
            return k
    return None


def steady_seconds(
    timeline: Sequence[TimelinePoint], rules: StabilityRules, duration_s: float | None = None
) -> list[TimelinePoint]:
    """The steady seconds of a run (after its warm-up); empty when steady state is not reached."""
    pairs = usable_seconds(timeline, duration_s)
    start = warmup_end([point.throughput_fps for point, _ in pairs], rules)
    return [] if start is None else [point for point, _ in pairs[start:]]


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample stdev / mean; 0 for fewer than 2 values or a mean of 0."""
    if len(values) < 2:
        return 0.0
    mean = math.fsum(values) / len(values)
    return statistics.stdev(values) / mean if mean > 0 else 0.0


def relative_trend(positions: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values against positions, times the span, over the mean.

    +0.05: the line ends 5% (of the mean) higher than it starts. 0 for fewer than 2 values.
    """
    if len(values) < 2 or len(positions) != len(values):
        return 0.0
    mean_x = math.fsum(positions) / len(positions)
    mean_y = math.fsum(values) / len(values)
    sxx = math.fsum((x - mean_x) ** 2 for x in positions)
    if sxx == 0 or mean_y <= 0:
        return 0.0
    slope = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(positions, values, strict=True))
    slope /= sxx
    return slope * (max(positions) - min(positions)) / mean_y


def _not_reached_warning(
    pairs: Sequence[tuple[TimelinePoint, float]], rules: StabilityRules, duration_option: str
) -> str:
    seconds = sum(length for _, length in pairs)
    needed = rules.min_steady_s
    longer = max(2 * needed, math.ceil(2 * seconds))
    if len(pairs) < needed:
        text = (
            f"The run lasted {seconds:.3g} s: too short to see a steady state, which needs "
            f"{needed} steady seconds after the warm-up. Run longer ({duration_option} of at "
            f"least {longer} s) to trust the per-second figures."
        )
    else:
        text = (
            f"The run ended before its throughput settled: in {seconds:.3g} s, no two "
            f"seconds in a row stayed within ±{_percent(rules.steady_band)} of the median of "
            f"the seconds after them with {needed} seconds left. Run longer ({duration_option} "
            f"of at least {longer} s)."
        )
    iterations = [point.iterations for point, _ in pairs]
    if iterations and 0 < statistics.median(iterations) < 1 / rules.steady_band:
        typical = statistics.median(iterations)
        text += (
            f" At about {typical:.3g} requests a second, one request more or less moves a "
            f"second's throughput by more than ±{_percent(rules.steady_band)}."
        )
    return text


def steady_state(
    timeline: Sequence[TimelinePoint],
    rules: StabilityRules,
    *,
    duration_s: float | None = None,
    duration_option: str = "duration_s",
) -> SteadyState:
    """The run's steady state by the warm-up rule, with its figures or a warning.

    `duration_s` is the run's measured length (for the last bucket's length); `duration_option`
    how the warning names the run-length option (`-t` for the CLI).
    """
    rule = rule_text(rules)
    pairs = usable_seconds(timeline, duration_s)
    start = warmup_end([point.throughput_fps for point, _ in pairs], rules)
    if start is None:
        return SteadyState(
            reached=False,
            rule=rule,
            warmup_s=None,
            seconds=0,
            throughput_fps=None,
            latency_median_ms=None,
            cv=None,
            trend=None,
            warning=_not_reached_warning(pairs, rules, duration_option),
        )
    steady = pairs[start:]
    fps = [point.throughput_fps for point, _ in steady]
    total_s = math.fsum(length for _, length in steady)
    latencies = [p.median_latency_ms for p, _ in steady if p.median_latency_ms is not None]
    return SteadyState(
        reached=True,
        rule=rule,
        warmup_s=float(steady[0][0].second),
        seconds=len(steady),
        throughput_fps=math.fsum(point.throughput_fps * length for point, length in steady)
        / total_s,
        latency_median_ms=statistics.median(latencies) if latencies else None,
        cv=coefficient_of_variation(fps),
        trend=relative_trend([float(point.second) for point, _ in steady], fps),
        warning=None,
    )
