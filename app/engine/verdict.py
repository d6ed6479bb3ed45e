"""The stability verdict of a job: stable, noisy, drifting or too_short, with the reasons.

Rules (thresholds from `StabilityRules`), each adding a verdict and a plain sentence:

- Busy host, for any number of runs: a run whose measured `cpu_usage` shows other processes
  (`other_fraction`) or the hypervisor (`steal_fraction`) above `busy_other_fraction`, a run
  started on a host the guard found still busy (`ran_busy`), or throttling (`throttled`) ->
  noisy at least. Other processes take cores and memory bandwidth from the benchmark: its
  figures are then the host's, not the device's.
- 3 repeats or more (`MIN_REPEATS_FOR_SPREAD`): the repeats are the evidence. Their
  throughput CV above `cv_repeats_max` -> noisy. From 4 repeats (`MIN_REPEATS_FOR_DRIFT`), a
  monotonic trend across them (|Spearman rho of throughput vs repeat| >= `monotonic_rho`) with
  a least-squares relative change beyond `drift_max` -> drifting. The warm-up runs into the
  first repeat (the loop starts right after one warm-up inference): when the first repeat is
  the slowest and its own seconds rose (its steady state starts after second 0, or without a
  steady state its seconds climb by more than `drift_max`), both checks leave it out and say
  so; the median the result reports hardly moves for one slow repeat. A repeat that did not
  reach steady state is no reason by itself (short repeats that agree are fine), but when
  the verdict is not stable for another reason, a last sentence says how many did not settle.
- Fewer than 3 repeats: the median run's per-second figures, by `steady.steady_state` with
  these rules. Not reached -> too_short when the run lasted less than 2 x `min_steady_s`
  seconds; otherwise drifting when its seconds show a monotonic trend beyond `drift_max`, else
  noisy. Reached -> noisy when the steady seconds' CV is above `cv_seconds_max`, drifting when
  their trend is beyond `drift_max` and monotonic. With exactly 2 repeats, their throughput CV
  above `cv_repeats_max` is noisy too (two runs that disagree are evidence enough).

Precedence when several apply: drifting > noisy > too_short > stable (a trend is the most
specific diagnosis; noise makes any length insufficient). Every reason found is listed, the
most severe first; stable has none.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from app.engine import steady
from app.engine.aggregate import median_run_index
from app.engine.integrity import RepeatAggregate, StabilityRules, StabilityVerdict, Verdict
from app.engine.spec import RunFigures

MIN_REPEATS_FOR_SPREAD = 3
MIN_REPEATS_FOR_DRIFT = 4
# A run shorter than this many times min_steady_s that did not settle is too short.
TOO_SHORT_FACTOR = 2

_SEVERITY: dict[Verdict, int] = {"stable": 0, "too_short": 1, "noisy": 2, "drifting": 3}

Finding = tuple[Verdict, str]


def _pct(share: float) -> str:
    """A measured share: 0.0723 -> '7.2%'."""
    return f"{abs(share) * 100:.1f}%"


def _limit(share: float) -> str:
    """A threshold: 0.03 -> '3%'."""
    return f"{share * 100:.3g}%"


def _runs_text(indices: Sequence[int], count: int) -> str:
    numbers = [str(i + 1) for i in indices]
    if len(numbers) == 1:
        return f"run {numbers[0]}" + (f" of {count}" if count > 1 else "")
    listed = ", ".join(numbers[:-1]) + f" and {numbers[-1]}"
    return f"runs {listed} of {count}"


def spearman_rho(values: Sequence[float]) -> float:
    """Spearman rank correlation of the values with their order (ties get average ranks)."""
    count = len(values)
    if count < 2:
        return 0.0
    order = sorted(range(count), key=lambda i: values[i])
    ranks = [0.0] * count
    start = 0
    while start < count:
        end = start
        while end + 1 < count and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2
        start = end + 1
    positions = [float(i) for i in range(count)]
    if statistics.pstdev(ranks) == 0:
        return 0.0
    return statistics.correlation(positions, ranks)


def _is_monotonic_trend(values: Sequence[float], trend: float, rules: StabilityRules) -> bool:
    return abs(trend) > rules.drift_max and abs(spearman_rho(values)) >= rules.monotonic_rho


def _direction(trend: float) -> str:
    return "rose" if trend > 0 else "fell"


def _host_findings(
    runs: Sequence[RunFigures], rules: StabilityRules, throttled: bool | None, ran_busy: bool
) -> list[Finding]:
    findings: list[Finding] = []
    limit = rules.busy_other_fraction
    for field, who in (
        ("other_fraction", "Other processes used"),
        ("steal_fraction", "The hypervisor took"),
    ):
        busy: list[tuple[int, float]] = []
        for index, run in enumerate(runs):
            usage = run.cpu_usage
            share = getattr(usage, field) if usage is not None and usage.measured else None
            if share is not None and share > limit:
                busy.append((index, share))
        if busy:
            top = max(share for _, share in busy)
            amount = _pct(top) if len(busy) == 1 else f"up to {_pct(top)}"
            where = _runs_text([index for index, _ in busy], len(runs))
            findings.append(
                (
                    "noisy",
                    f"{who} {amount} of the host's CPUs during {where} (above {_limit(limit)}).",
                )
            )
    if ran_busy:
        findings.append(
            (
                "noisy",
                "The host was still busy when the measured runs started (the guard ran out of "
                "time waiting).",
            )
        )
    if throttled:
        findings.append(
            (
                "noisy",
                f"The CPU frequency dropped more than {_limit(rules.throttle_drop)} below the "
                f"run's start for {rules.min_steady_s} s or more (throttling).",
            )
        )
    return findings


def _warming_first(runs: Sequence[RunFigures], rules: StabilityRules) -> bool:
    """The first repeat is the slowest and its seconds rose: the warm-up ran into it."""
    first = runs[0]
    if first.throughput_fps > min(run.throughput_fps for run in runs[1:]):
        return False
    duration_s = first.duration_ms / 1000
    state = steady.steady_state(first.timeline, rules, duration_s=duration_s)
    if state.reached:
        return bool(state.warmup_s)
    pairs = steady.usable_seconds(first.timeline, duration_s)
    fps = [point.throughput_fps for point, _ in pairs]
    return steady.relative_trend([float(point.second) for point, _ in pairs], fps) > (
        rules.drift_max
    )


def _repeat_findings(
    runs: Sequence[RunFigures], aggregate: RepeatAggregate | None, rules: StabilityRules
) -> list[Finding]:
    findings: list[Finding] = []
    count = len(runs)
    judged, which, left_out = list(runs), f"{count} repeats", ""
    if count >= MIN_REPEATS_FOR_SPREAD and _warming_first(runs, rules):
        judged = judged[1:]
        which = f"repeats 2 to {count}"
        left_out = "; the first, still warming up, is left out"
    throughputs = [run.throughput_fps for run in judged]
    cv = steady.coefficient_of_variation(throughputs)
    if aggregate is not None and len(judged) == count:
        cv = aggregate.throughput_fps.cv
    if cv > rules.cv_repeats_max:
        findings.append(
            (
                "noisy",
                f"Throughput varied {_pct(cv)} (CV) across {which}, above the "
                f"{_limit(rules.cv_repeats_max)} threshold{left_out}.",
            )
        )
    if len(judged) >= MIN_REPEATS_FOR_DRIFT:
        trend = steady.relative_trend([float(i) for i in range(len(judged))], throughputs)
        if _is_monotonic_trend(throughputs, trend, rules):
            findings.append(
                (
                    "drifting",
                    f"Throughput {_direction(trend)} {_pct(trend)} across {which} "
                    f"(a monotonic trend, above the {_limit(rules.drift_max)} threshold)"
                    f"{left_out}.",
                )
            )
    return findings


def _unsettled_note(runs: Sequence[RunFigures], rules: StabilityRules) -> str | None:
    unsettled = [
        run
        for run in runs
        if not steady.steady_state(run.timeline, rules, duration_s=run.duration_ms / 1000).reached
    ]
    if not unsettled:
        return None
    longest_s = max(run.duration_ms for run in unsettled) / 1000
    return (
        f"Steady state was not reached in {len(unsettled)} of {len(runs)} repeats "
        f"(up to {longest_s:.3g} s each): longer repeats may steady the figures."
    )


def _single_run_findings(run: RunFigures, label: str, rules: StabilityRules) -> list[Finding]:
    duration_s = run.duration_ms / 1000
    state = steady.steady_state(run.timeline, rules, duration_s=duration_s)
    if not state.reached:
        pairs = steady.usable_seconds(run.timeline, duration_s)
        if duration_s < TOO_SHORT_FACTOR * rules.min_steady_s:
            return [("too_short", f"Steady state was not reached: {state.warning}")]
        fps = [point.throughput_fps for point, _ in pairs]
        trend = steady.relative_trend([float(point.second) for point, _ in pairs], fps)
        if _is_monotonic_trend(fps, trend, rules):
            return [
                (
                    "drifting",
                    f"Steady state was not reached: throughput {_direction(trend)} "
                    f"{_pct(trend)} across the {len(pairs)} seconds of {label} "
                    f"(a monotonic trend).",
                )
            ]
        cv = steady.coefficient_of_variation(fps)
        return [
            (
                "noisy",
                f"Steady state was not reached: throughput varied {_pct(cv)} (CV) across "
                f"the {len(pairs)} seconds of {label}. {state.warning}",
            )
        ]
    findings: list[Finding] = []
    points = steady.steady_seconds(run.timeline, rules, duration_s)
    fps = [point.throughput_fps for point in points]
    cv = state.cv or 0.0
    trend = state.trend or 0.0
    if cv > rules.cv_seconds_max:
        findings.append(
            (
                "noisy",
                f"Throughput varied {_pct(cv)} (CV) across the {state.seconds} steady seconds "
                f"of {label}, above the {_limit(rules.cv_seconds_max)} threshold.",
            )
        )
    if _is_monotonic_trend(fps, trend, rules):
        findings.append(
            (
                "drifting",
                f"Throughput {_direction(trend)} {_pct(trend)} across the steady seconds of "
                f"{label} (a monotonic trend, above the {_limit(rules.drift_max)} threshold).",
            )
        )
    return findings


def judge(
    runs: Sequence[RunFigures],
    aggregate: RepeatAggregate | None,
    rules: StabilityRules,
    throttled: bool | None = None,
    ran_busy: bool = False,
) -> StabilityVerdict:
    """The job's verdict by the rules in the module docstring."""
    if not runs:
        return StabilityVerdict(
            verdict="too_short",
            reasons=["No measured run completed: nothing to judge."],
            rules=rules,
        )
    findings = _host_findings(runs, rules, throttled, ran_busy)
    count = len(runs)
    if count >= MIN_REPEATS_FOR_SPREAD:
        findings += _repeat_findings(runs, aggregate, rules)
    else:
        if count == 2:
            findings += [f for f in _repeat_findings(runs, aggregate, rules) if f[0] == "noisy"]
        index = median_run_index([run.throughput_fps for run in runs])
        label = "the run" if count == 1 else f"the median run ({_runs_text([index], count)})"
        findings += _single_run_findings(runs[index], label, rules)
    if not findings:
        return StabilityVerdict(verdict="stable", reasons=[], rules=rules)
    findings.sort(key=lambda finding: -_SEVERITY[finding[0]])
    reasons = [text for _, text in findings]
    if count >= MIN_REPEATS_FOR_SPREAD:
        note = _unsettled_note(runs, rules)
        if note:
            reasons.append(note)
    return StabilityVerdict(verdict=findings[0][0], reasons=reasons, rules=rules)
