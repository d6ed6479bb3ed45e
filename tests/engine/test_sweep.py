"""Sweeps, the pure part: grid expansion, the search's queue/skip decisions, constraints, the best
point, the Pareto front and a sweep's status, on hand-made points (no OpenVINO)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from app.engine.sweep import (
    DECIDED,
    SWEEP_AXES,
    PointFigures,
    PointState,
    PointStatus,
    SweepConstraints,
    decide,
    expand,
    figures_of,
    label,
    sweep_status,
    violations,
)
from app.engine.sweep_summary import pareto_front, pareto_metric, summarize

_UNSET: Any = object()


def figs(
    fps: float = 100.0,
    latency: float | None = 10.0,
    *,
    median: float | None = _UNSET,
    p90: float | None = _UNSET,
    p95: float | None = _UNSET,
    p99: float | None = _UNSET,
    verdict: str | None = "stable",
    nireq: int = 1,
    batch: int = 1,
) -> PointFigures:
    """Figures at `fps` whose four latencies are `latency` unless one is given on its own."""

    def pick(value: float | None) -> float | None:
        return latency if value is _UNSET else value

    return PointFigures(
        throughput_fps=fps,
        latency_median_ms=pick(median),
        latency_p90_ms=pick(p90),
        latency_p95_ms=pick(p95),
        latency_p99_ms=pick(p99),
        verdict=verdict,
        measured_s=3.0,
        setup_s=0.5,
        nstreams=1,
        nireq=nireq,
        batch_size=batch,
    )


def point(
    index: int,
    values: dict[str, Any] | None = None,
    status: PointStatus = "pending",
    figures: PointFigures | None = None,
    skip_reason: str | None = None,
) -> PointState:
    return PointState(index, values if values is not None else {}, status, figures, skip_reason)


def done(index: int, figures: PointFigures, values: dict[str, Any] | None = None) -> PointState:
    """A succeeded point."""
    return point(
        index, values if values is not None else {"nireq": index + 1}, "succeeded", figures
    )


def points_of(grid: Mapping[str, list[Any]]) -> list[PointState]:
    return [PointState(i, values) for i, values in enumerate(expand(grid))]


def find(points: list[PointState], **values: Any) -> PointState:
    """The one point whose values include `values`."""
    matches = [p for p in points if all(p.values.get(k) == v for k, v in values.items())]
    assert len(matches) == 1, f"{values} matches {len(matches)} points"
    return matches[0]


def succeed(p: PointState, figures: PointFigures) -> None:
    p.status = "succeeded"
    p.figures = figures


def record(points: list[PointState], skips: Mapping[int, str]) -> None:
    for p in points:
        if p.index in skips:
            p.status = "skipped"
            p.skip_reason = skips[p.index]


P99_20 = SweepConstraints(latency_p99_ms=20)
NONE = SweepConstraints()


# ------------------------------------------------------------------------------ expand
def test_expand_is_the_cartesian_product_outer_axis_first_nireq_fastest() -> None:
    points = expand({"nireq": [1, 2, 4], "device": ["CPU", "GPU"], "batch": [1, 8]})

    assert len(points) == 3 * 2 * 2
    assert points[:4] == [
        {"device": "CPU", "batch": 1, "nireq": 1},
        {"device": "CPU", "batch": 1, "nireq": 2},
        {"device": "CPU", "batch": 1, "nireq": 4},
        {"device": "CPU", "batch": 8, "nireq": 1},
    ]
    assert points[-1] == {"device": "GPU", "batch": 8, "nireq": 4}
    # every combination exactly once
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)


def test_expand_follows_sweep_axes_order_not_the_grid_order() -> None:
    grid = {axis: ["a", "b"] for axis in reversed(SWEEP_AXES) if axis not in {"batch", "nireq"}}
    grid |= {"nireq": [1, 2], "batch": [1, 2]}
    points = expand(grid)

    assert len(points) == 2 ** len(SWEEP_AXES)
    assert list(points[0]) == list(SWEEP_AXES)
    # consecutive points differ in nireq; the first half and second half differ in device
    assert points[0]["nireq"] != points[1]["nireq"]
    assert {p["device"] for p in points[: len(points) // 2]} == {"a"}
    assert {p["device"] for p in points[len(points) // 2 :]} == {"b"}


def test_expand_sorts_numeric_axes_and_keeps_text_axes_in_the_given_order() -> None:
    points = expand(
        {
            "nireq": [8, 2, 4],
            "batch": [16, 1],
            "infer_precision": ["f32", "bf16"],
            "hint": ["THROUGHPUT", "LATENCY"],
            "nstreams": ["AUTO", 1],
        }
    )

    def order(axis: str) -> list[Any]:
        seen: list[Any] = []
        for p in points:
            if p[axis] not in seen:
                seen.append(p[axis])
        return seen

    assert order("nireq") == [2, 4, 8]
    assert order("batch") == [1, 16]
    assert order("infer_precision") == ["f32", "bf16"]
    assert order("hint") == ["THROUGHPUT", "LATENCY"]
    assert order("nstreams") == ["AUTO", 1]


def test_expand_single_axis_and_empty_grid() -> None:
    assert expand({"nireq": [4, 1]}) == [{"nireq": 1}, {"nireq": 4}]
    assert expand({}) == [{}]
    assert expand({"nireq": [1, 2], "batch": []}) == []


def test_label_reads_innermost_axis_first() -> None:
    values = {"device": "CPU", "batch": 2, "nstreams": 2, "nireq": 4, "api": "async"}
    assert label(values) == "nireq=4 nstreams=2 batch=2 api=async device=CPU"
    assert label({"nireq": 4, "nstreams": 2, "batch": 1}) == "nireq=4 nstreams=2 batch=1"
    assert label({"hint": "LATENCY"}) == "hint=LATENCY"
    assert label({}) == "(base parameters)"


# -------------------------------------------------------------------------- violations
@pytest.mark.parametrize(
    ("metric", "name", "short"),
    [
        ("latency_median_ms", "median", "median latency"),
        ("latency_p90_ms", "p90", "p90"),
        ("latency_p95_ms", "p95", "p95"),
        ("latency_p99_ms", "p99", "p99"),
    ],
)
def test_each_latency_bound_is_an_upper_bound(metric: str, name: str, short: str) -> None:
    constraints = SweepConstraints(**{metric: 20})
    over = figs(latency=10.0, **{name: 23.4})

    assert violations(over, constraints) == [f"{short} 23.4 ms > 20 ms"]
    assert violations(figs(latency=10.0, **{name: 20.0}), constraints) == []  # at the bound
    assert violations(figs(latency=10.0, **{name: 19.9}), constraints) == []
    # other latencies far over do not matter to this bound
    others_high = figs(latency=500.0, **{name: 5.0})
    assert violations(others_high, constraints) == []


def test_throughput_floor_is_a_lower_bound() -> None:
    constraints = SweepConstraints(throughput_fps=100)
    assert violations(figs(fps=99.5), constraints) == ["throughput 99.5 FPS < 100.0 FPS"]
    assert violations(figs(fps=100.0), constraints) == []
    assert violations(figs(fps=250.0), constraints) == []


def test_missing_latency_counts_as_broken() -> None:
    constraints = SweepConstraints(latency_p95_ms=20)
    broken = violations(figs(latency=None), constraints)
    assert len(broken) == 1
    assert broken[0].startswith("p95 not measured")
    # without a latency bound a missing latency breaks nothing
    assert violations(figs(latency=None), SweepConstraints(throughput_fps=10)) == []


def test_violations_lists_every_broken_bound_and_no_bounds_breaks_nothing() -> None:
    constraints = SweepConstraints(
        latency_median_ms=5, latency_p99_ms=20, latency_p90_ms=50, throughput_fps=200
    )
    broken = violations(figs(fps=150, median=6, p90=40, p95=40, p99=25), constraints)
    assert broken == [
        "p99 25 ms > 20 ms",
        "median latency 6 ms > 5 ms",
        "throughput 150.0 FPS < 200.0 FPS",
    ]
    assert violations(figs(fps=0.1, latency=1e6), NONE) == []


def test_constraints_must_be_positive_and_known() -> None:
    with pytest.raises(ValueError):
        SweepConstraints(latency_p99_ms=0)
    with pytest.raises(ValueError):
        SweepConstraints(throughput_fps=-1)
    with pytest.raises(ValueError):
        SweepConstraints(latency_p999_ms=5)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- summarize
def test_best_is_the_fastest_point_meeting_the_bound() -> None:
    points = [
        done(0, figs(fps=100, p99=10)),
        done(1, figs(fps=180, p99=18)),
        done(2, figs(fps=300, p99=35)),  # fastest, breaks the bound
        done(3, figs(fps=150, p99=12)),
    ]
    summary = summarize(points, "throughput_fps", P99_20)

    assert summary.best == 1
    assert summary.closest is None
    assert summary.message.startswith("Best under p99 ≤ 20 ms: #1 nireq=2: 180.0 FPS")
    assert "p99 18 ms" in summary.message
    assert summary.notes == []


def test_faster_point_breaking_the_throughput_floor_or_any_bound_is_never_chosen() -> None:
    constraints = SweepConstraints(latency_median_ms=8, latency_p99_ms=20, throughput_fps=50)
    points = [
        done(0, figs(fps=900, median=9, p99=15)),  # median over
        done(1, figs(fps=800, median=5, p99=None)),  # p99 not measured
        done(2, figs(fps=60, median=5, p99=15)),
        done(3, figs(fps=40, median=1, p99=2)),  # under the floor
    ]
    assert summarize(points, "throughput_fps", constraints).best == 2


def test_without_constraints_best_is_simply_the_fastest() -> None:
    points = [done(0, figs(fps=10, latency=1)), done(1, figs(fps=20, latency=500))]
    summary = summarize(points, "throughput_fps", NONE)
    assert summary.best == 1
    assert summary.message.startswith("Best: #1 ")


def test_latency_objective_picks_the_lowest_percentile() -> None:
    points = [
        done(0, figs(fps=500, p99=19, median=3)),
        done(1, figs(fps=100, p99=7, median=6)),
        done(2, figs(fps=300, p99=12, median=2)),
        done(3, figs(fps=900, p99=4, median=1, p95=30), values={"nireq": 8}),
    ]
    # point 3 has the lowest p99 but breaks a p95 bound
    constraints = SweepConstraints(latency_p95_ms=25)
    summary = summarize(points, "latency_p99_ms", constraints)
    assert summary.best == 1
    assert "p99 7 ms" in summary.message

    by_median = summarize(points, "latency_median_ms", constraints)
    assert by_median.best == 2
    assert "median latency 2 ms" in by_median.message


def test_ties_go_to_the_lower_index_whatever_the_list_order() -> None:
    points = [
        done(5, figs(fps=200, p99=10)),
        done(2, figs(fps=200, p99=10)),
        done(7, figs(fps=100, p99=10)),
    ]
    assert summarize(points, "throughput_fps", P99_20).best == 2
    assert summarize(points, "latency_p99_ms", P99_20).best == 2


def test_no_point_meets_names_the_closest_by_relative_excess() -> None:
    # 0 breaks its median bound by 3 ms (30%), 1 breaks its p99 bound by 10 ms (10%)
    constraints = SweepConstraints(latency_median_ms=10, latency_p99_ms=100)
    points = [
        done(0, figs(fps=500, median=13, p99=50)),
        done(1, figs(fps=100, median=5, p99=110)),
        done(2, figs(fps=900, median=30, p99=300)),
    ]
    summary = summarize(points, "throughput_fps", constraints)

    assert summary.best is None
    assert summary.closest == 1
    assert summary.message.startswith("No point meets p99 ≤ 100.0 ms and median latency ≤ 10 ms;")
    assert "the closest is #1 nireq=2: 100.0 FPS" in summary.message
    assert "p99 110.0 ms > 100.0 ms" in summary.message


def test_closest_weighs_each_point_by_its_worst_bound() -> None:
    constraints = SweepConstraints(latency_p99_ms=20, throughput_fps=100)
    points = [
        done(0, figs(fps=50, p99=22)),  # p99 +10%, throughput -50% (floor/fps - 1 = 100%)
        done(1, figs(fps=100, p99=28)),  # p99 +40%
    ]
    summary = summarize(points, "throughput_fps", constraints)
    assert (summary.best, summary.closest) == (None, 1)
    assert "throughput ≥ 100.0 FPS" in summary.message


def test_closest_prefers_a_measured_latency_and_ties_to_the_lower_index() -> None:
    points = [
        done(0, figs(fps=1000, p99=None)),
        done(3, figs(fps=10, p99=40)),
        done(1, figs(fps=10, p99=40)),
    ]
    summary = summarize(points, "throughput_fps", P99_20)
    assert summary.closest == 1
    assert summary.best is None


def test_failed_skipped_and_running_points_are_never_best() -> None:
    great = figs(fps=10_000, p99=1)
    points = [
        point(0, {"nireq": 1}, "failed", great),
        point(1, {"nireq": 2}, "skipped", great, "why"),
        point(2, {"nireq": 4}, "running", great),
        point(3, {"nireq": 8}, "cancelled", great),
        done(4, figs(fps=10, p99=5)),
    ]
    summary = summarize(points, "throughput_fps", P99_20)
    assert summary.best == 4
    assert summary.pareto == [4]


def test_no_succeeded_point_yet_or_at_all() -> None:
    waiting = [point(0, {"nireq": 1}, "failed"), point(1, {"nireq": 2}, "queued")]
    summary = summarize(waiting, "throughput_fps", P99_20)
    assert (summary.best, summary.closest) == (None, None)
    assert summary.message == "No point has succeeded yet"
    assert summary.pareto == []

    finished = [point(0, {"nireq": 1}, "failed"), point(1, {"nireq": 2}, "skipped")]
    summary = summarize(finished, "throughput_fps", P99_20)
    assert (summary.best, summary.closest) == (None, None)
    assert summary.message.startswith("No point succeeded")

    assert summarize([], "throughput_fps", NONE).best is None


def test_runner_up_within_five_percent_adds_a_note() -> None:
    close = [done(0, figs(fps=100, p99=10)), done(1, figs(fps=96, p99=10))]
    summary = summarize(close, "throughput_fps", P99_20)
    assert summary.best == 0
    assert len(summary.notes) == 1
    assert summary.notes[0].startswith("The runner-up #1 nireq=2: 96 FPS, p99 10 ms")
    assert "within 4.0% of the best" in summary.notes[0]

    apart = [done(0, figs(fps=100, p99=10)), done(1, figs(fps=94, p99=10))]
    assert summarize(apart, "throughput_fps", P99_20).notes == []


def test_runner_up_note_only_counts_points_meeting_the_constraints() -> None:
    # 1 is within 1% but breaks the bound; the real runner-up (2) is 50% behind
    points = [
        done(0, figs(fps=100, p99=10)),
        done(1, figs(fps=99, p99=30)),
        done(2, figs(fps=50, p99=10)),
    ]
    assert summarize(points, "throughput_fps", P99_20).notes == []


def test_runner_up_note_on_a_latency_objective() -> None:
    points = [done(0, figs(p99=10.0)), done(1, figs(p99=10.3)), done(2, figs(p99=15))]
    summary = summarize(points, "latency_p99_ms", NONE)
    assert summary.best == 0
    assert len(summary.notes) == 1
    assert "#1 " in summary.notes[0]
    assert "within 3.0%" in summary.notes[0]


def test_an_unstable_best_point_gets_a_note() -> None:
    points = [done(0, figs(fps=200, verdict="unstable")), done(1, figs(fps=100))]
    notes = summarize(points, "throughput_fps", NONE).notes
    assert notes == ["The best point's stability verdict is unstable"]
    no_verdict = [done(0, figs(fps=200, verdict=None))]
    assert summarize(no_verdict, "throughput_fps", NONE).notes == []


# ------------------------------------------------------------------------------ pareto
def test_pareto_front_excludes_dominated_points_and_orders_by_latency() -> None:
    points = [
        done(0, figs(fps=100, p99=10)),
        done(1, figs(fps=300, p99=30)),
        done(2, figs(fps=200, p99=20)),
        done(3, figs(fps=150, p99=25)),  # dominated by 2 (faster and quicker)
        done(4, figs(fps=300, p99=40)),  # dominated by 1 (as fast, slower)
        done(5, figs(fps=90, p99=10)),  # dominated by 0 (as quick, slower)
    ]
    assert pareto_front(points, "latency_p99_ms") == [0, 2, 1]


def test_pareto_front_keeps_equal_points_and_skips_unmeasured_and_unfinished() -> None:
    points = [
        done(0, figs(fps=200, p99=20)),
        done(1, figs(fps=200, p99=20)),
        done(2, figs(fps=100, p99=10)),
        done(3, figs(fps=5000, p99=None)),  # no p99: not on the front, dominates nothing
        point(4, {"nireq": 5}, "failed", figs(fps=1000, p99=1)),
    ]
    assert pareto_front(points, "latency_p99_ms") == [2, 0, 1]
    assert pareto_front([], "latency_p99_ms") == []


def test_pareto_front_uses_the_metric_it_is_given() -> None:
    points = [
        done(0, figs(fps=100, median=5, p99=50)),
        done(1, figs(fps=200, median=8, p99=20)),
        done(2, figs(fps=150, median=9, p99=10)),
    ]
    assert pareto_front(points, "latency_p99_ms") == [2, 1]
    assert pareto_front(points, "latency_median_ms") == [0, 1]


@pytest.mark.parametrize(
    ("objective", "bounds", "expected"),
    [
        ("throughput_fps", {}, "latency_p99_ms"),
        ("throughput_fps", {"throughput_fps": 10}, "latency_p99_ms"),
        ("latency_median_ms", {}, "latency_median_ms"),
        ("latency_p90_ms", {"throughput_fps": 10}, "latency_p90_ms"),
        ("throughput_fps", {"latency_median_ms": 5}, "latency_median_ms"),
        ("throughput_fps", {"latency_median_ms": 5, "latency_p90_ms": 9}, "latency_p90_ms"),
        ("latency_median_ms", {"latency_p95_ms": 9, "latency_p99_ms": 20}, "latency_p99_ms"),
        ("latency_p99_ms", {"latency_median_ms": 5, "latency_p95_ms": 9}, "latency_p95_ms"),
    ],
)
def test_pareto_metric_choice(objective: Any, bounds: dict[str, float], expected: str) -> None:
    assert pareto_metric(objective, SweepConstraints(**bounds)) == expected


def test_summary_carries_the_front_over_its_pareto_metric() -> None:
    points = [
        done(0, figs(fps=100, median=5, p99=50)),
        done(1, figs(fps=200, median=8, p99=20)),
        done(2, figs(fps=150, median=9, p99=10)),
    ]
    by_median = summarize(points, "throughput_fps", SweepConstraints(latency_median_ms=100))
    assert (by_median.pareto_metric, by_median.pareto) == ("latency_median_ms", [0, 1])
    by_p99 = summarize(points, "throughput_fps", NONE)
    assert (by_p99.pareto_metric, by_p99.pareto) == ("latency_p99_ms", [2, 1])
    # the front is there even when no point meets the constraints
    none_meet = summarize(points, "throughput_fps", SweepConstraints(latency_p99_ms=1))
    assert none_meet.best is None
    assert none_meet.pareto == [2, 1]


# ------------------------------------------------------------------------- decide: grid
def test_grid_queues_every_pending_point_and_skips_nothing() -> None:
    points = points_of({"api": ["async", "sync"], "batch": [1, 2], "nireq": [1, 2, 4]})
    points[0].status = "running"
    points[1].status = "succeeded"
    points[1].figures = figs(p99=1000)  # breaks the bound: the grid does not care
    points[2].status = "queued"
    points[3].status = "skipped"

    decision = decide(points, "grid", P99_20)
    assert decision.queue == [p.index for p in points[4:]]
    assert decision.skip == {}


# ----------------------------------------------------------------------- decide: search
def test_search_queues_the_first_nireq_of_each_chain() -> None:
    points = points_of({"nstreams": [1, 2], "nireq": [1, 2, 4]})
    decision = decide(points, "search", NONE)
    assert decision.queue == [
        find(points, nstreams=1, nireq=1).index,
        find(points, nstreams=2, nireq=1).index,
    ]
    assert decision.skip == {}


def test_search_without_a_nireq_axis_queues_everything() -> None:
    points = points_of({"hint": ["LATENCY", "THROUGHPUT"], "nstreams": [1, 2]})
    decision = decide(points, "search", P99_20)
    assert decision.queue == [0, 1, 2, 3]
    assert decision.skip == {}


def test_search_next_nireq_waits_until_the_previous_is_decided() -> None:
    points = points_of({"nireq": [1, 2, 4]})
    assert decide(points, "search", NONE).queue == [0]

    points[0].status = "queued"
    assert decide(points, "search", NONE).queue == []
    points[0].status = "running"
    assert decide(points, "search", NONE).queue == []

    succeed(points[0], figs(fps=100))
    assert decide(points, "search", NONE).queue == [1]
    points[1].status = "running"
    assert decide(points, "search", NONE).queue == []

    succeed(points[1], figs(fps=200))
    decision = decide(points, "search", NONE)
    assert (decision.queue, decision.skip) == ([2], {})


def test_search_chain_order_follows_nireq_values_not_list_order() -> None:
    # the same chain, listed from the most requests down
    points = [point(0, {"nireq": 8}), point(1, {"nireq": 2}), point(2, {"nireq": 4})]
    assert decide(points, "search", NONE).queue == [1]
    succeed(points[1], figs(fps=100))
    assert decide(points, "search", NONE).queue == [2]


def test_search_point_breaking_a_latency_bound_skips_the_rest_of_its_chain() -> None:
    points = points_of({"nireq": [1, 2, 4, 8]})
    succeed(points[0], figs(fps=100, p99=10))
    succeed(points[1], figs(fps=200, p99=30))

    decision = decide(points, "search", P99_20)
    assert decision.queue == []
    assert set(decision.skip) == {2, 3}
    reason = decision.skip[2]
    assert "nireq 2 already broke the bound" in reason
    assert "p99 30 ms > 20 ms" in reason
    # the reason carries down the chain
    assert decision.skip[3] == reason


def test_search_first_point_breaking_the_bound_skips_the_whole_rest() -> None:
    points = points_of({"nireq": [1, 2, 4]})
    succeed(points[0], figs(fps=100, median=3, p90=40))
    constraints = SweepConstraints(latency_p90_ms=25)
    decision = decide(points, "search", constraints)
    assert decision.queue == []
    assert set(decision.skip) == {1, 2}
    assert "nireq 1 already broke the bound (p90 40 ms > 25 ms)" in decision.skip[1]


def test_search_unmeasured_latency_breaks_the_bound_in_a_chain() -> None:
    points = points_of({"nireq": [1, 2]})
    succeed(points[0], figs(fps=0.0, latency=None))
    decision = decide(points, "search", SweepConstraints(latency_median_ms=50))
    assert decision.queue == []
    assert "not measured" in decision.skip[1]


def test_search_missing_the_throughput_floor_does_not_stop_a_chain() -> None:
    # more requests may still reach the floor
    points = points_of({"nireq": [1, 2, 4]})
    succeed(points[0], figs(fps=10, p99=5))
    decision = decide(points, "search", SweepConstraints(throughput_fps=1000, latency_p99_ms=20))
    assert (decision.queue, decision.skip) == ([1], {})


def test_search_throughput_growth_under_min_gain_skips_the_rest() -> None:
    points = points_of({"nireq": [1, 2, 4, 8]})
    succeed(points[0], figs(fps=100))
    succeed(points[1], figs(fps=103))

    decision = decide(points, "search", NONE)
    assert decision.queue == []
    assert set(decision.skip) == {2, 3}
    reason = decision.skip[2]
    assert "stopped growing" in reason
    assert "nireq 2 gave 103.0 FPS against 100.0 FPS at nireq 1" in reason
    assert "+3.0%" in reason
    assert "5% minimum gain" in reason
    assert decision.skip[3] == reason


def test_search_throughput_falling_skips_the_rest() -> None:
    points = points_of({"nireq": [1, 2, 4]})
    succeed(points[0], figs(fps=100))
    succeed(points[1], figs(fps=80))
    decision = decide(points, "search", NONE)
    assert list(decision.skip) == [2]
    assert "-20.0%" in decision.skip[2]


def test_search_throughput_growth_above_min_gain_queues_the_next() -> None:
    points = points_of({"nireq": [1, 2, 4, 8]})
    succeed(points[0], figs(fps=100))
    succeed(points[1], figs(fps=120))
    decision = decide(points, "search", NONE)
    assert (decision.queue, decision.skip) == ([2], {})

    # the same growth is too little against a bigger minimum gain
    decision = decide(points, "search", NONE, min_gain=0.25)
    assert decision.queue == []
    assert set(decision.skip) == {2, 3}
    assert "25% minimum gain" in decision.skip[2]

    # growth of exactly the minimum gain is enough (150 / 100 - 1 == 0.5 exactly)
    succeed(points[1], figs(fps=150))
    decision = decide(points, "search", NONE, min_gain=0.5)
    assert (decision.queue, decision.skip) == ([2], {})


def test_search_gain_is_judged_on_the_last_two_points_of_the_chain() -> None:
    points = points_of({"nireq": [1, 2, 4, 8]})
    succeed(points[0], figs(fps=100))
    succeed(points[1], figs(fps=200))  # +100%
    succeed(points[2], figs(fps=202))  # +1%
    decision = decide(points, "search", NONE)
    assert decision.queue == []
    assert list(decision.skip) == [3]
    assert "nireq 4 gave 202.0 FPS against 200.0 FPS at nireq 2" in decision.skip[3]


def test_search_failed_previous_point_does_not_stop_the_chain() -> None:
    points = points_of({"nireq": [1, 2, 4]})
    points[0].status = "failed"
    assert decide(points, "search", P99_20).queue == [1]

    points = points_of({"nireq": [1, 2, 4]})
    succeed(points[0], figs(fps=100))
    points[1].status = "failed"
    decision = decide(points, "search", P99_20)
    assert (decision.queue, decision.skip) == ([2], {})


def test_search_sync_runs_only_the_first_nireq() -> None:
    points = points_of({"api": ["async", "sync"], "nireq": [1, 2, 4]})
    decision = decide(points, "search", NONE)

    sync_first = find(points, api="sync", nireq=1).index
    assert decision.queue == [find(points, api="async", nireq=1).index, sync_first]
    skipped = {find(points, api="sync", nireq=n).index for n in (2, 4)}
    assert set(decision.skip) == skipped
    for index in skipped:
        assert "api sync" in decision.skip[index]
        assert "would repeat nireq 1" in decision.skip[index]
    assert f"nireq {points[max(skipped)].values['nireq']}" in decision.skip[max(skipped)]


def test_search_sync_points_are_skipped_even_when_the_first_did_well() -> None:
    points = points_of({"api": ["sync"], "nireq": [2, 4]})
    succeed(points[0], figs(fps=100))
    decision = decide(points, "search", NONE)
    assert decision.queue == []
    assert "would repeat nireq 2" in decision.skip[1]


def test_search_batch_waits_for_the_smaller_batch_under_a_latency_bound() -> None:
    points = points_of({"batch": [1, 2, 4], "nireq": [1, 2]})
    decision = decide(points, "search", P99_20)
    assert (decision.queue, decision.skip) == ([find(points, batch=1, nireq=1).index], {})

    # the smaller batch met the bound at its fewest requests: the next batch may start
    succeed(find(points, batch=1, nireq=1), figs(p99=10))
    decision = decide(points, "search", P99_20)
    assert decision.queue == [
        find(points, batch=1, nireq=2).index,
        find(points, batch=2, nireq=1).index,
    ]
    assert decision.skip == {}


def test_search_batch_breaking_the_bound_skips_bigger_batches_whole() -> None:
    points = points_of({"batch": [1, 2, 4], "nireq": [1, 2]})
    succeed(find(points, batch=1, nireq=1), figs(p99=30))

    decision = decide(points, "search", P99_20)
    assert decision.queue == []
    assert set(decision.skip) == {p.index for p in points} - {0}
    batch_reason = decision.skip[find(points, batch=2, nireq=1).index]
    assert "batch 1 already broke the bound at nireq=1 batch=1" in batch_reason
    assert "p99 30 ms > 20 ms" in batch_reason
    # carried down the bigger batch's chain and on to the next batch
    assert decision.skip[find(points, batch=2, nireq=2).index] == batch_reason
    assert decision.skip[find(points, batch=4, nireq=1).index] == batch_reason
    assert decision.skip[find(points, batch=4, nireq=2).index] == batch_reason
    # the smaller batch's own chain says it was its nireq
    assert "nireq 1 already broke" in decision.skip[find(points, batch=1, nireq=2).index]


def test_search_batch_rule_looks_at_the_smaller_batch_first_nireq_only() -> None:
    points = points_of({"batch": [1, 2, 4], "nireq": [1, 2]})
    succeed(find(points, batch=1, nireq=1), figs(p99=10))
    succeed(find(points, batch=1, nireq=2), figs(p99=30))  # more requests broke it
    decision = decide(points, "search", P99_20)
    # batch 2 may still run at one request; batch 4 waits for it
    assert (decision.queue, decision.skip) == ([find(points, batch=2, nireq=1).index], {})


def test_search_batch_rule_is_per_combination_of_the_other_axes() -> None:
    points = points_of({"batch": [1, 2], "nstreams": [1, 2], "nireq": [1]})
    succeed(find(points, batch=1, nstreams=1), figs(p99=30))
    succeed(find(points, batch=1, nstreams=2), figs(p99=10))
    decision = decide(points, "search", P99_20)
    assert decision.queue == [find(points, batch=2, nstreams=2).index]
    assert list(decision.skip) == [find(points, batch=2, nstreams=1).index]


def test_search_batch_after_a_failed_smaller_batch_runs() -> None:
    points = points_of({"batch": [1, 2], "nireq": [1, 2]})
    find(points, batch=1, nireq=1).status = "failed"
    decision = decide(points, "search", P99_20)
    assert decision.queue == [
        find(points, batch=1, nireq=2).index,
        find(points, batch=2, nireq=1).index,
    ]


@pytest.mark.parametrize("constraints", [NONE, SweepConstraints(throughput_fps=100)])
def test_search_batch_chains_do_not_wait_without_a_latency_bound(
    constraints: SweepConstraints,
) -> None:
    points = points_of({"batch": [1, 2, 4], "nireq": [1, 2]})
    decision = decide(points, "search", constraints)
    assert decision.queue == [find(points, batch=b, nireq=1).index for b in (1, 2, 4)]
    assert decision.skip == {}


def test_search_batch_rule_without_a_nireq_axis() -> None:
    # a batch-only search: batch 2 waits for batch 1, and is skipped once batch 1 broke the bound
    points = points_of({"batch": [1, 2]})
    decision = decide(points, "search", P99_20)
    assert (decision.queue, decision.skip) == ([0], {})

    succeed(points[0], figs(p99=30))
    decision = decide(points, "search", P99_20)
    assert decision.queue == []
    assert "batch 1 already broke the bound" in decision.skip[1]


def test_search_skip_reasons_carry_from_recorded_skips() -> None:
    points = points_of({"nireq": [1, 2, 4]})
    succeed(points[0], figs(fps=100))
    points[1].status = "skipped"
    points[1].skip_reason = "stored reason"
    decision = decide(points, "search", NONE)
    assert decision.skip == {2: "stored reason"}

    points[1].skip_reason = None
    assert decide(points, "search", NONE).skip == {2: "skipped"}


def test_search_recorded_skips_are_final_and_deciding_again_adds_nothing() -> None:
    points = points_of({"nireq": [1, 2, 4, 8]})
    succeed(points[0], figs(fps=100, p99=30))
    first = decide(points, "search", P99_20)
    assert set(first.skip) == {1, 2, 3}

    # deciding again before recording gives the same answer
    again = decide(points, "search", P99_20)
    assert (again.queue, again.skip) == (first.queue, first.skip)

    record(points, first.skip)
    after = decide(points, "search", P99_20)
    assert (after.queue, after.skip) == ([], {})
    assert all(p.status in DECIDED for p in points)


# ------------------------------------------------------------ decide: a whole search run
_BATCH_GAIN = {1: 1.0, 2: 1.5, 4: 2.0, 8: 2.5, 16: 3.0}


def _model(values: Mapping[str, Any]) -> PointFigures:
    """A device with `nstreams` parallel lanes: throughput grows with requests up to the lanes
    then stays flat; latency grows with the batch and with requests queueing for a lane."""
    batch, nstreams, nireq = values["batch"], values["nstreams"], values["nireq"]
    if values["api"] == "sync":
        fps, p99 = 100 * _BATCH_GAIN[batch], 5.0 * batch
    else:
        fps = 100 * _BATCH_GAIN[batch] * min(nireq, nstreams)
        p99 = 5.0 * batch * max(1.0, nireq / nstreams)
    return figs(fps=fps, latency=p99, nireq=nireq, batch=batch)


def _run_search(
    points: list[PointState],
    constraints: SweepConstraints,
    outcome: Callable[[PointState], PointFigures | None],
    strategy: Any = "search",
) -> int:
    """Decide, record, run every queued point, again, until nothing is left; the passes."""
    for passes in range(1, 10 * len(points) + 2):
        decision = decide(points, strategy, constraints)
        assert not set(decision.queue) & set(decision.skip)
        record(points, decision.skip)
        for p in points:
            if p.index in decision.queue:
                assert p.status == "pending"
                p.status = "queued"
        queued = [p for p in points if p.status == "queued"]
        if not queued and not decision.skip:
            pending = [p.values for p in points if p.status == "pending"]
            assert pending == [], f"left undecided for ever: {pending}"
            return passes
        for p in queued:
            p.status = "running"
        for p in queued:
            figures = outcome(p)
            if figures is None:
                p.status = "failed"
            else:
                succeed(p, figures)
    raise AssertionError("the search did not finish")


SEARCH_GRID = {
    "api": ["async", "sync"],
    "batch": [1, 2, 4, 8, 16],
    "nstreams": [1, 2],
    "nireq": [1, 2, 4, 8],
}


def test_a_whole_search_finishes_with_every_point_decided() -> None:
    points = points_of(SEARCH_GRID)
    assert len(points) == 80
    _run_search(points, P99_20, lambda p: _model(p.values))

    assert all(p.status in DECIDED for p in points)
    assert all(p.status in ("succeeded", "skipped") for p in points)
    skipped = [p for p in points if p.status == "skipped"]
    assert all(p.skip_reason for p in skipped)
    assert all(p.figures is not None for p in points if p.status == "succeeded")
    # async (32 + 8 at batch 16): batch 1 runs 2 (nstreams 1: flat after nireq 2) + 3
    # (nstreams 2); batch 2 the same, 2 + 3; batch 4: 2 + 3 (nireq 2, resp. 4, breaks
    # p99 20); batch 8: 1 + 1 (breaks at nireq 1); batch 16: none (batch 8 broke) -> 17.
    # sync (40): only nireq 1 per chain, batch 1..8 -> 8; batch 16 skipped whole.
    assert sum(p.status == "succeeded" for p in points) == 25
    assert len(skipped) == 55

    kinds = {
        "stopped growing": find(points, api="async", batch=1, nstreams=1, nireq=4),
        "nireq 2 already broke": find(points, api="async", batch=4, nstreams=1, nireq=4),
        "nireq 1 already broke": find(points, api="async", batch=8, nstreams=2, nireq=2),
        "batch 8 already broke": find(points, api="async", batch=16, nstreams=1, nireq=1),
        "api sync": find(points, api="sync", batch=1, nstreams=2, nireq=8),
    }
    for phrase, p in kinds.items():
        assert p.status == "skipped"
        assert phrase in (p.skip_reason or ""), (phrase, p.values, p.skip_reason)
    assert find(points, api="sync", batch=16, nstreams=1, nireq=1).status == "skipped"
    assert find(points, api="sync", batch=8, nstreams=1, nireq=1).status == "succeeded"


def test_a_whole_search_finds_the_same_best_as_the_grid() -> None:
    searched = points_of(SEARCH_GRID)
    _run_search(searched, P99_20, lambda p: _model(p.values))
    everything = points_of(SEARCH_GRID)
    _run_search(everything, P99_20, lambda p: _model(p.values), strategy="grid")
    assert all(p.status == "succeeded" for p in everything)

    best_search = summarize(searched, "throughput_fps", P99_20).best
    best_grid = summarize(everything, "throughput_fps", P99_20).best
    assert best_search is not None
    assert best_search == best_grid
    assert searched[best_search].values == {"api": "async", "batch": 4, "nstreams": 2, "nireq": 2}


def test_a_whole_search_with_failures_still_finishes() -> None:
    points = points_of({"batch": [1, 2, 4], "nstreams": [1, 2], "nireq": [1, 2, 4, 8]})

    def outcome(p: PointState) -> PointFigures | None:
        if p.values["nireq"] == 2 or (p.values["batch"] == 1 and p.values["nireq"] == 1):
            return None
        return _model({"api": "async", **p.values})

    _run_search(points, P99_20, outcome)
    assert all(p.status in DECIDED for p in points)
    # a failed point does not end its chain: with nireq 2 failing, nireq 4 still ran
    assert find(points, batch=1, nstreams=2, nireq=4).status == "succeeded"
    # a failed smaller batch does not stop the bigger one
    assert find(points, batch=2, nstreams=1, nireq=1).status == "succeeded"


# --------------------------------------------------------------------------- sweep_status
def _statuses(*statuses: PointStatus) -> list[PointState]:
    return [point(i, {"nireq": i + 1}, s) for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "cancel", "expected"),
    [
        (("pending", "pending"), False, "queued"),
        (("queued", "pending"), False, "queued"),
        (("skipped", "pending"), False, "queued"),
        (("skipped", "queued"), False, "queued"),
        (("running", "pending"), False, "running"),
        (("succeeded", "pending"), False, "running"),
        (("failed", "queued"), False, "running"),
        (("cancelled", "pending"), False, "running"),
        (("running", "pending"), True, "running"),
        (("succeeded", "skipped"), False, "succeeded"),
        (("failed", "succeeded", "cancelled"), False, "succeeded"),
        (("failed", "skipped"), False, "failed"),
        (("cancelled", "cancelled"), False, "failed"),
        (("succeeded", "cancelled"), True, "cancelled"),
        (("succeeded", "succeeded"), True, "cancelled"),
        (("skipped", "skipped"), True, "cancelled"),
    ],
)
def test_sweep_status(statuses: tuple[PointStatus, ...], cancel: bool, expected: str) -> None:
    assert sweep_status(_statuses(*statuses), cancel) == expected


# ---------------------------------------------------------------------------- figures_of
def _result(**overrides: Any) -> dict[str, Any]:
    """The parts of a stored BenchmarkResult's JSON figures_of reads (and some it does not)."""
    result: dict[str, Any] = {
        "status": "completed",
        "api": "async",
        "device": "CPU",
        "throughput_fps": 412.5,
        "latency_ms": {"median": 9.5, "p90": 11.0, "p95": 12.25, "p99": 15.75, "mean": 9.9},
        "iterations": 4125,
        "runs": [{"duration_ms": 10_000.0}, {"duration_ms": 10_250.0}, {"duration_ms": 9_750.0}],
        "duration_ms": 10_000.0,
        "read_model_ms": 120.0,
        "reshape_ms": 30.0,
        "compile_ms": 800.0,
        "first_inference_ms": 50.0,
        "config": {"hint": "THROUGHPUT", "nstreams": 4, "nireq": 8, "batch_size": 2},
        "stability": {"verdict": "stable", "reasons": []},
    }
    result.update(overrides)
    return result


def test_figures_of_a_stored_result() -> None:
    f = figures_of(_result())
    assert f.throughput_fps == 412.5
    assert (f.latency_median_ms, f.latency_p90_ms, f.latency_p95_ms, f.latency_p99_ms) == (
        9.5,
        11.0,
        12.25,
        15.75,
    )
    assert f.verdict == "stable"
    assert f.measured_s == pytest.approx(30.0)  # every repeat, not the median run's 10 s
    assert f.setup_s == pytest.approx(1.0)
    assert (f.nstreams, f.nireq, f.batch_size) == (4, 8, 2)


def test_figures_of_falls_back_to_duration_without_runs() -> None:
    assert figures_of(_result(runs=[])).measured_s == pytest.approx(10.0)
    without = _result()
    del without["runs"]
    assert figures_of(without).measured_s == pytest.approx(10.0)


def test_figures_of_treats_a_missing_reshape_as_zero() -> None:
    assert figures_of(_result(reshape_ms=None)).setup_s == pytest.approx(0.97)
    assert figures_of(_result(reshape_ms=None, read_model_ms=None)).setup_s == pytest.approx(0.85)


def test_figures_of_without_latency_stability_or_streams() -> None:
    f = figures_of(
        _result(
            latency_ms=None, stability=None, config={"nireq": 1, "batch_size": 1, "nstreams": None}
        )
    )
    assert (f.latency_median_ms, f.latency_p90_ms, f.latency_p95_ms, f.latency_p99_ms) == (
        None,
        None,
        None,
        None,
    )
    assert f.verdict is None
    assert f.nstreams is None
    # such a point breaks any latency bound
    assert violations(f, SweepConstraints(latency_p99_ms=1000)) != []


def test_figures_of_feeds_the_summary() -> None:
    fast = figures_of(
        _result(throughput_fps=500.0, latency_ms={"median": 5, "p90": 8, "p95": 9, "p99": 30})
    )
    quick = figures_of(_result(throughput_fps=300.0))
    points = [done(0, fast), done(1, quick)]
    summary = summarize(points, "throughput_fps", P99_20)
    assert summary.best == 1
    assert summary.pareto == [1, 0]
