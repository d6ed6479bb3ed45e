"""The stability verdict on hand-made runs: each rule flags what it should, and only that."""

from __future__ import annotations

import pytest

from app.engine import verdict
from app.engine.aggregate import aggregate
from app.engine.integrity import StabilityRules, StabilityVerdict
from app.engine.spec import CpuUsage, RunFigures, TimelinePoint
from app.engine.steady import steady_state

# The rules with the thresholds these cases were written for (the defaults may move).
RULES = StabilityRules(cv_repeats_max=0.03)
QUIET_FPS = [19.0, 19.1, 18.9, 19.0, 19.05]  # CV 0.4%


def usage(other: float = 0.01, steal: float = 0.0, wall_s: float = 3.0) -> CpuUsage:
    return CpuUsage(
        logical_cpus=2,
        wall_s=wall_s,
        benchmark_cpu_s=wall_s,
        other_cpu_s=other * 2 * wall_s,
        steal_s=steal * 2 * wall_s,
        other_fraction=other,
        steal_fraction=steal,
    )


def run(
    fps: float, per_second: list[float] | None = None, cpu: CpuUsage | None = None
) -> RunFigures:
    """A run at `fps`; its per-second throughput `per_second` (default: 3 flat seconds)."""
    seconds = per_second if per_second is not None else [fps] * 3
    timeline = [
        TimelinePoint(second=i, iterations=round(v), throughput_fps=v, median_latency_ms=1000 / v)
        for i, v in enumerate(seconds)
    ]
    return RunFigures(
        throughput_fps=fps,
        latency_ms=None,
        iterations=round(sum(seconds)),
        duration_ms=1000.0 * len(seconds),
        timeline=timeline,
        steady_state=steady_state(timeline, RULES),
        cpu_usage=cpu if cpu is not None else usage(),
    )


def judge(runs: list[RunFigures], **kwargs: bool | None) -> StabilityVerdict:
    return verdict.judge(runs, aggregate(runs), RULES, **kwargs)  # type: ignore[arg-type]


def test_agreeing_repeats_on_a_quiet_host_are_stable() -> None:
    result = judge([run(f) for f in QUIET_FPS])
    assert result.verdict == "stable"
    assert result.reasons == []
    assert result.rules == RULES


def test_short_repeats_that_agree_are_stable_without_a_steady_state() -> None:
    # 2 s repeats of a tiny model: no steady state in any, but five agreeing repeats
    runs = [run(f * 100, [f * 100, f * 100]) for f in QUIET_FPS]
    assert not runs[0].steady_state.reached
    assert judge(runs).verdict == "stable"


def test_repeats_that_disagree_are_noisy_with_the_cv_in_the_reason() -> None:
    result = judge([run(f) for f in (19.0, 17.0, 20.0, 18.0, 21.5)])
    assert result.verdict == "noisy"
    # sd 1.75, mean 19.1
    assert result.reasons[0] == (
        "Throughput varied 9.1% (CV) across 5 repeats, above the 3% threshold."
    )


def test_another_process_on_the_host_makes_agreeing_repeats_noisy() -> None:
    runs = [run(f) for f in QUIET_FPS]
    runs[1] = runs[1].model_copy(update={"cpu_usage": usage(other=0.48)})
    result = judge(runs)
    assert result.verdict == "noisy"
    assert result.reasons == [
        "Other processes used 48.0% of the host's CPUs during run 2 of 5 (above 10%)."
    ]


def test_busy_runs_are_listed_together_with_the_highest_share() -> None:
    shares = [0.41, 0.02, 0.45, 0.4, 0.4]
    runs = [run(f, cpu=usage(other=o)) for f, o in zip(QUIET_FPS, shares, strict=True)]
    runs.append(run(19.0, cpu=usage(steal=0.2)))
    result = judge(runs)
    assert result.reasons[:2] == [
        "Other processes used up to 45.0% of the host's CPUs during runs 1, 3, 4 and 5 of 6 "
        "(above 10%).",
        "The hypervisor took 20.0% of the host's CPUs during run 6 of 6 (above 10%).",
    ]


def test_unmeasured_cpu_usage_is_not_busy() -> None:
    unmeasured = usage(other=0.9).model_copy(update={"measured": False})
    assert judge([run(f, cpu=unmeasured) for f in QUIET_FPS]).verdict == "stable"


def test_a_busy_start_and_throttling_are_noisy() -> None:
    runs = [run(f) for f in QUIET_FPS]
    assert judge(runs, ran_busy=True).verdict == "noisy"
    throttled = judge(runs, throttled=True)
    assert throttled.verdict == "noisy"
    assert "dropped more than 10% below the run's start for 3 s or more" in throttled.reasons[0]
    assert judge(runs, throttled=None).verdict == "stable"


def test_a_monotonic_decline_across_repeats_is_drifting_before_noisy() -> None:
    result = judge([run(f) for f in (100.0, 98.0, 96.0, 94.0, 92.0)])
    assert result.verdict == "drifting"
    # least squares: -2 per repeat over 4 steps, mean 96 -> -8.3%
    assert result.reasons[0] == (
        "Throughput fell 8.3% across 5 repeats (a monotonic trend, above the 5% threshold)."
    )
    assert any("(CV) across 5 repeats" in r for r in result.reasons[1:])


def test_a_first_repeat_still_warming_up_is_left_out() -> None:
    # ResNet-like: the first 3 s repeat climbs 13 -> 18 FPS, the others hold 19
    first = run(15.7, [13.0, 16.0, 18.0])
    assert judge([first, *(run(f) for f in QUIET_FPS[1:])]).verdict == "stable"
    # a first repeat that is slow throughout is no warm-up: it counts
    flat_first = run(15.7, [15.7, 15.7, 15.7])
    result = judge([flat_first, *(run(f) for f in QUIET_FPS[1:])])
    assert result.verdict == "noisy"
    assert "across 5 repeats" in result.reasons[0]


def test_repeats_that_disagree_after_a_warm_up_are_still_noisy() -> None:
    first = run(15.0, [10.0, 19.0, 19.0, 19.0])  # steady state from second 1
    assert first.steady_state.warmup_s == 1.0
    result = judge([first, *(run(f) for f in (19.0, 17.0, 20.0, 18.0))])  # sd 1.29, mean 18.5
    assert result.verdict == "noisy"
    assert result.reasons[0].startswith(
        "Throughput varied 7.0% (CV) across repeats 2 to 5, above the 3% threshold; the first, "
        "still warming up, is left out."
    )


def test_the_same_values_out_of_order_are_noisy_not_drifting() -> None:
    result = judge([run(f) for f in (100.0, 92.0, 98.0, 94.0, 96.0)])
    assert result.verdict == "noisy"


@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        ((100.0, 96.0, 98.0, 94.0, 92.0), "drifting"),  # one adjacent swap: |rho| = 0.9
        ((98.0, 100.0, 94.0, 96.0, 92.0), "noisy"),  # two swaps: |rho| = 0.8, not monotonic
    ],
)
def test_a_trend_across_repeats_must_be_nearly_monotonic(
    fps: tuple[float, ...], expected: str
) -> None:
    assert judge([run(f) for f in fps]).verdict == expected


def test_three_repeats_are_too_few_for_a_trend() -> None:
    result = judge([run(f) for f in (100.0, 95.0, 90.0)])
    assert result.verdict == "noisy"
    assert not any("trend" in r for r in result.reasons)


def test_noisy_repeats_that_did_not_settle_say_so_last() -> None:
    runs = [run(f, [f, f]) for f in (19.0, 17.0, 20.0, 18.0, 21.5)]
    result = judge(runs)
    assert result.verdict == "noisy"
    assert result.reasons[-1] == (
        "Steady state was not reached in 5 of 5 repeats (up to 2 s each): longer repeats may "
        "steady the figures."
    )


def test_a_single_flat_run_is_stable() -> None:
    assert judge([run(19.0, [19.0, 19.2, 18.8, 19.1, 19.0, 18.9])]).verdict == "stable"


def test_a_single_run_with_noisy_seconds_is_noisy() -> None:
    seconds = [100.0, 100.0, 80.0, 120.0, 85.0, 115.0, 80.0, 100.0, 120.0, 95.0]
    result = judge([run(99.5, seconds)])
    assert result.verdict == "noisy"
    assert result.reasons[0].startswith("Throughput varied 15.")
    assert "across the 10 steady seconds of the run, above the 10% threshold." in result.reasons[0]


def test_a_single_run_declining_second_by_second_is_drifting() -> None:
    seconds = [100.0 - i for i in range(10)]  # all within the band, -9.4% by least squares
    result = judge([run(95.5, seconds)])
    assert result.verdict == "drifting"
    assert result.reasons == [
        "Throughput fell 9.4% across the steady seconds of the run (a monotonic trend, above "
        "the 5% threshold)."
    ]


def test_a_single_short_run_without_steady_state_is_too_short() -> None:
    result = judge([run(1005.0, [1000.0, 1010.0])])
    assert result.verdict == "too_short"
    assert result.reasons[0].startswith("Steady state was not reached: The run lasted 2 s")


@pytest.mark.parametrize(
    ("seconds", "expected", "words"),
    [
        ([10.0, 19.0, 11.0, 18.0, 10.0, 19.0, 11.0, 18.0], "noisy", "varied"),
        ([5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0], "drifting", "rose"),
    ],
)
def test_a_long_single_run_that_never_settles_is_noisy_or_drifting(
    seconds: list[float], expected: str, words: str
) -> None:
    result = judge([run(12.0, seconds)])
    assert result.verdict == expected
    assert result.reasons[0].startswith(f"Steady state was not reached: throughput {words}")


def test_a_busy_host_outranks_a_short_run() -> None:
    result = judge([run(1005.0, [1000.0, 1010.0], cpu=usage(other=0.45))])
    assert result.verdict == "noisy"
    assert result.reasons[0].startswith("Other processes used 45.0%")
    assert result.reasons[1].startswith("Steady state was not reached")


def test_two_repeats_judge_the_median_run_and_their_agreement() -> None:
    flat = [19.0, 19.2, 18.8, 19.1, 19.0, 18.9]
    assert judge([run(19.0, flat), run(19.1, flat)]).verdict == "stable"
    disagree = judge([run(19.0, flat), run(17.0, flat)])
    assert disagree.verdict == "noisy" and "across 2 repeats" in disagree.reasons[0]
    # the median of two is the slower one: its seconds decline
    declining = [100.0 - i for i in range(10)]
    slow = judge([run(95.5, declining), run(97.0, flat * 2)])
    assert slow.verdict == "drifting"
    assert "of the median run (run 1 of 2)" in slow.reasons[-1]


def test_no_runs_is_too_short() -> None:
    result = verdict.judge([], None, RULES)
    assert result.verdict == "too_short" and result.reasons
