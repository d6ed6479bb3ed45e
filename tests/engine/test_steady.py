"""Steady state: the warm-up rule on hand-made timelines, and the figures after it."""

from __future__ import annotations

import statistics

import pytest

from app.engine import steady
from app.engine.integrity import StabilityRules
from app.engine.spec import TimelinePoint

RULES = StabilityRules()


def timeline(fps: list[float], batch: int = 1, last_s: float = 1.0) -> list[TimelinePoint]:
    """Per-second points with these throughputs; the last bucket lasts `last_s` seconds."""
    points = []
    for second, value in enumerate(fps):
        length = last_s if second == len(fps) - 1 else 1.0
        points.append(
            TimelinePoint(
                second=second,
                iterations=round(value * length / batch),
                throughput_fps=value,
                median_latency_ms=1000 * batch / value if value else None,
            )
        )
    return points


def test_a_resnet_like_ramp_ends_its_warmup_where_it_flattens() -> None:
    # 13 -> 19 FPS over the first seconds, then flat: 16 is 16% below 19, 18 is 5% below
    fps = [13.0, 16.0, 18.0, 19.0, 19.0, 19.0, 19.0, 19.0]
    state = steady.steady_state(timeline(fps), RULES)
    assert state.reached
    assert state.warmup_s == 2.0
    assert state.seconds == 6
    assert state.throughput_fps == pytest.approx(statistics.fmean(fps[2:]))
    assert state.cv == pytest.approx(statistics.stdev(fps[2:]) / statistics.fmean(fps[2:]))
    assert state.warning is None
    assert "±10%" in state.rule


def test_a_late_slow_second_does_not_push_the_warmup_to_the_end() -> None:
    fps = [19.0, 19.2, 18.9, 19.1, 19.0, 19.0, 12.0, 19.1, 19.0, 18.8]
    state = steady.steady_state(timeline(fps), RULES)
    assert state.reached and state.warmup_s == 0.0
    assert state.seconds == 10
    # the outlier stays in the figures: it is noise, not warm-up
    assert state.cv == pytest.approx(statistics.stdev(fps) / statistics.fmean(fps))
    assert state.cv is not None and state.cv > 0.1


def test_a_lucky_second_inside_the_ramp_does_not_end_the_warmup() -> None:
    # second 1 is in band of the later median, but second 2 is not: warm-up runs to 3
    fps = [13.0, 18.5, 15.0, 19.0, 19.0, 19.2, 18.9]
    state = steady.steady_state(timeline(fps), RULES)
    assert state.warmup_s == 3.0
    assert state.seconds == 4


def test_latency_is_the_median_of_the_steady_seconds_medians() -> None:
    points = timeline([10.0, 20.0, 20.0, 20.0, 20.0])
    points = [p.model_copy(update={"median_latency_ms": float(i)}) for i, p in enumerate(points)]
    state = steady.steady_state(points, RULES)
    assert state.warmup_s == 1.0
    assert state.latency_median_ms == 2.5  # median of 1, 2, 3, 4


def test_trend_is_the_least_squares_change_over_the_span_relative_to_the_mean() -> None:
    fps = [100.0, 99.0, 98.0, 97.0, 96.0]  # slope -1 over a span of 4 s, mean 98
    state = steady.steady_state(timeline(fps), RULES)
    assert state.warmup_s == 0.0
    assert state.trend == pytest.approx(-4 / 98)
    assert steady.relative_trend([0, 1, 2], [5.0, 5.0, 5.0]) == 0.0


def test_too_few_seconds_is_not_reached_and_says_to_run_longer() -> None:
    state = steady.steady_state(timeline([1000.0, 1010.0]), RULES, duration_option="-t")
    assert not state.reached
    assert state.warmup_s is None and state.throughput_fps is None and state.seconds == 0
    assert state.warning is not None
    assert "lasted 2 s" in state.warning and "-t of at least 6 s" in state.warning


def test_a_run_that_never_settles_is_not_reached() -> None:
    state = steady.steady_state(timeline([10.0, 19.0, 11.0, 18.0, 10.0, 19.0, 11.0, 18.0]), RULES)
    assert not state.reached
    assert state.warning is not None and "ended before its throughput settled" in state.warning


def test_few_requests_a_second_are_named_in_the_warning() -> None:
    # 4 requests a second: one more or less is 25%, more than the 10% band
    state = steady.steady_state(timeline([4.0, 5.0, 3.0, 5.0, 4.0, 3.0]), RULES)
    assert not state.reached
    assert state.warning is not None and "about 4 requests a second" in state.warning


def test_a_short_last_bucket_is_left_out_and_a_longer_one_weighs_by_its_length() -> None:
    flat = [100.0, 100.0, 100.0]
    # a 0.3 s tail at 50 FPS (a few requests): dropped, so the run stays flat
    short = steady.steady_state(timeline([*flat, 50.0], last_s=0.3), RULES, duration_s=3.3)
    assert short.seconds == 3 and short.throughput_fps == pytest.approx(100.0)
    assert short.cv == 0.0
    # a 0.8 s tail at 95 FPS counts, weighted by its 0.8 s: (300 + 76) / 3.8
    longer = steady.steady_state(timeline([*flat, 95.0], last_s=0.8), RULES, duration_s=3.8)
    assert longer.seconds == 4
    assert longer.throughput_fps == pytest.approx(376 / 3.8)


def test_the_last_bucket_length_is_read_from_the_timeline_without_a_duration() -> None:
    # batch 4: 100 FPS = 25 requests a second; the tail has 5 requests at 80 FPS -> 0.25 s
    points = timeline([100.0, 100.0, 100.0, 80.0], batch=4, last_s=0.25)
    assert steady.bucket_lengths_s(points) == pytest.approx([1.0, 1.0, 1.0, 0.25])
    assert steady.bucket_lengths_s(points, duration_s=3.4) == pytest.approx([1, 1, 1, 0.4])
    assert steady.steady_state(points, RULES).seconds == 3


def test_steady_seconds_are_the_points_after_the_warmup() -> None:
    points = timeline([5.0, 20.0, 20.0, 20.0])
    assert [p.second for p in steady.steady_seconds(points, RULES)] == [1, 2, 3]
    assert steady.steady_seconds(timeline([5.0, 20.0]), RULES) == []


def test_the_band_and_minimum_come_from_the_rules() -> None:
    fps = [90.0, 95.0, 100.0, 100.0, 100.0]
    assert steady.steady_state(timeline(fps), RULES).warmup_s == 0.0  # 90 within 10% of 100
    tight = StabilityRules(steady_band=0.03)
    assert steady.steady_state(timeline(fps), tight).warmup_s == 2.0
    strict = StabilityRules(min_steady_s=6)
    assert not steady.steady_state(timeline(fps), strict).reached
