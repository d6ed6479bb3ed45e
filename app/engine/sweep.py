"""Sweeps, the pure part: a grid of run options expanded to points, which points a search
runs or skips, whether a point meets the constraints, the best point and the Pareto front.

No I/O: the service stores a sweep's points and their jobs, the CLI runs them in-process;
both ask this module what the figures mean.

- **Points.** `expand` takes {axis: [values]} for any of `SWEEP_AXES` and gives their
  cartesian product, outer axis first in `SWEEP_AXES` order, so `nireq` (the innermost) varies
  fastest; the numeric axes (`batch`, `nireq`) run in ascending order.
- **Constraints** are upper bounds on the top-level (median run's) latencies, and a lower
  bound on throughput. A point meets them when every bound holds.
- **Best point**: among succeeded points that meet the constraints, the highest throughput
  (objective `throughput_fps`) or the lowest latency percentile named by the objective; ties
  go to the earlier point. When no point meets them, the closest is the one whose worst
  bound is exceeded by the smallest share.
- **Pareto front**: throughput against the constrained latency (the first latency bound in
  `LATENCY_METRICS` order, else the objective's latency, else p99): the points no other point
  beats on both (at least as fast and as quick, better in one).
- **Search** (`decide` with strategy `search`): along `nireq` (ascending, per combination of
  the other axes), the next value runs only after the previous one finished; the rest of the
  chain is skipped once a point broke a latency bound (more requests in flight only queue
  longer) or once throughput grew by less than `min_gain` over the value before (the
  requests already keep the device busy). Along `batch`, a combination whose smaller batch
  broke a latency bound at its fewest requests is skipped whole (a bigger batch only makes
  each request longer). With `api: sync`, only the first `nireq` value runs (sync uses one
  request; the others would be the same run). Every skipped point says why.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Outer to inner: the order of a sweep's points and of a point's label.
SWEEP_AXES = ("device", "api", "hint", "infer_precision", "batch", "nstreams", "nireq")
NUMERIC_AXES = frozenset({"batch", "nireq"})
# Constraint / objective name -> the LatencyStats field it reads.
LATENCY_METRICS: dict[str, str] = {
    "latency_p99_ms": "p99",
    "latency_p95_ms": "p95",
    "latency_p90_ms": "p90",
    "latency_median_ms": "median",
}
_SHORT = {"latency_p99_ms": "p99", "latency_p95_ms": "p95", "latency_p90_ms": "p90"}
_SHORT["latency_median_ms"] = "median latency"

Strategy = Literal["grid", "search"]
Objective = Literal[
    "throughput_fps", "latency_median_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"
]
PointStatus = Literal["pending", "queued", "running", "succeeded", "failed", "cancelled", "skipped"]
DECIDED = frozenset({"succeeded", "failed", "cancelled", "skipped"})
DEFAULT_MIN_GAIN = 0.05


class SweepConstraints(BaseModel):
    """Bounds a point must meet to be the best: latencies at most, throughput at least."""

    model_config = ConfigDict(extra="forbid")

    latency_median_ms: float | None = Field(default=None, gt=0, description="Median at most")
    latency_p90_ms: float | None = Field(default=None, gt=0, description="p90 at most")
    latency_p95_ms: float | None = Field(default=None, gt=0, description="p95 at most")
    latency_p99_ms: float | None = Field(default=None, gt=0, description="p99 at most")
    throughput_fps: float | None = Field(default=None, gt=0, description="Throughput at least")

    def latency_bounds(self) -> dict[str, float]:
        """{metric: bound} for the latency bounds set, in LATENCY_METRICS order."""
        return {
            name: bound for name in LATENCY_METRICS if (bound := getattr(self, name)) is not None
        }


class PointFigures(BaseModel):
    """What one point measured: the top-level (median run's) figures of its result."""

    throughput_fps: float
    latency_median_ms: float | None
    latency_p90_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    verdict: str | None = Field(description="The result's stability verdict")
    measured_s: float = Field(description="The measured loops, every repeat")
    setup_s: float = Field(description="Reading, reshaping and compiling, and the first inference")
    nstreams: int | None = Field(description="The streams the device really used")
    nireq: int = Field(description="The infer requests the run really used")
    batch_size: int

    def metric(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value


def figures_of(result: Mapping[str, Any]) -> PointFigures:
    """A stored BenchmarkResult's JSON, as a point's figures."""
    latency = result.get("latency_ms") or {}
    runs = result.get("runs") or []
    measured_ms = sum(r.get("duration_ms", 0.0) for r in runs) or result.get("duration_ms", 0.0)
    setup_ms = sum(
        result.get(key) or 0.0
        for key in ("read_model_ms", "reshape_ms", "compile_ms", "first_inference_ms")
    )
    config = result.get("config") or {}
    return PointFigures(
        throughput_fps=result.get("throughput_fps", 0.0),
        latency_median_ms=latency.get("median"),
        latency_p90_ms=latency.get("p90"),
        latency_p95_ms=latency.get("p95"),
        latency_p99_ms=latency.get("p99"),
        verdict=(result.get("stability") or {}).get("verdict"),
        measured_s=measured_ms / 1000,
        setup_s=setup_ms / 1000,
        nstreams=config.get("nstreams"),
        nireq=config.get("nireq", 1),
        batch_size=config.get("batch_size", 1),
    )


@dataclass
class PointState:
    """One point as the sweep knows it now."""

    index: int
    values: dict[str, Any]
    status: PointStatus = "pending"
    figures: PointFigures | None = None
    skip_reason: str | None = None


@dataclass
class Decision:
    """What a sweep does next: points to queue now, points to skip (index -> why)."""

    queue: list[int] = field(default_factory=list)
    skip: dict[int, str] = field(default_factory=dict)


def _sorted_values(axis: str, values: Sequence[Any]) -> list[Any]:
    return sorted(values) if axis in NUMERIC_AXES else list(values)


def expand(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The points of a grid, outer axis first (SWEEP_AXES order); numeric axes ascending."""
    axes = [axis for axis in SWEEP_AXES if axis in grid]
    columns = [_sorted_values(axis, grid[axis]) for axis in axes]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*columns)]


def label(values: Mapping[str, Any]) -> str:
    """`nireq=4 nstreams=2 batch=1`: innermost axis first, as people read a sweep's knobs."""
    axes = [axis for axis in reversed(SWEEP_AXES) if axis in values]
    return " ".join(f"{axis}={values[axis]}" for axis in axes) or "(base parameters)"


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.1f}"


def violations(figures: PointFigures, constraints: SweepConstraints) -> list[str]:
    """Each bound the figures break, as a phrase: `p99 23.4 ms > 20 ms`."""
    broken: list[str] = []
    for name, bound in constraints.latency_bounds().items():
        value = figures.metric(name)
        if value is None:
            broken.append(f"{_SHORT[name]} not measured (no request completed)")
        elif value > bound:
            broken.append(f"{_SHORT[name]} {_fmt(value)} ms > {_fmt(bound)} ms")
    floor = constraints.throughput_fps
    if floor is not None and figures.throughput_fps < floor:
        broken.append(f"throughput {_fmt(figures.throughput_fps)} FPS < {_fmt(floor)} FPS")
    return broken


def _latency_broken(figures: PointFigures, constraints: SweepConstraints) -> list[str]:
    only_latency = constraints.model_copy(update={"throughput_fps": None})
    return violations(figures, only_latency)


def _excess(figures: PointFigures, constraints: SweepConstraints) -> float:
    """How far the point is from meeting the constraints: its worst bound's relative excess."""
    worst = 0.0
    for name, bound in constraints.latency_bounds().items():
        value = figures.metric(name)
        worst = max(worst, float("inf") if value is None else value / bound - 1)
    floor = constraints.throughput_fps
    if floor is not None:
        worst = max(worst, floor / figures.throughput_fps - 1 if figures.throughput_fps else 1e9)
    return worst


# ---------------------------------------------------------------------------- search
def _neighbour(
    points: Sequence[PointState], point: PointState, axis: str, step: int
) -> PointState | None:
    """The point with the same values on every other axis and the `step`-th value before
    this one on `axis` (step 1: the one just before), or None."""
    others = {k: v for k, v in point.values.items() if k != axis}
    chain = [p for p in points if {k: v for k, v in p.values.items() if k != axis} == others]
    chain.sort(key=lambda p: p.values[axis])
    position = next(i for i, p in enumerate(chain) if p.index == point.index)
    return chain[position - step] if position - step >= 0 else None


def _first_of_chain(points: Sequence[PointState], point: PointState) -> PointState:
    """The point of the same nireq chain with the fewest requests (itself without nireq)."""
    if "nireq" not in point.values:
        return point
    first = point
    while (before := _neighbour(points, first, "nireq", 1)) is not None:
        first = before
    return first


def _search_step(
    points: Sequence[PointState],
    point: PointState,
    constraints: SweepConstraints,
    min_gain: float,
) -> tuple[str, str | None]:
    """('queue' | 'wait' | 'skip', reason) for a pending point under the search rules."""
    has_latency_bound = bool(constraints.latency_bounds())
    if "nireq" in point.values:
        previous = _neighbour(points, point, "nireq", 1)
        if previous is not None:
            if point.values.get("api") == "sync":
                return "skip", (
                    f"api sync runs one request at a time: nireq {point.values['nireq']} "
                    f"would repeat nireq {_first_of_chain(points, point).values['nireq']}"
                )
            if previous.status == "skipped":
                return "skip", previous.skip_reason
            if previous.status not in DECIDED:
                return "wait", None
            if previous.status == "succeeded" and previous.figures is not None:
                broken = _latency_broken(previous.figures, constraints)
                if broken:
                    return "skip", (
                        f"nireq {previous.values['nireq']} already broke the bound "
                        f"({'; '.join(broken)}): more requests in flight only wait longer"
                    )
                before = _neighbour(points, previous, "nireq", 1)
                if (
                    before is not None
                    and before.status == "succeeded"
                    and before.figures is not None
                    and before.figures.throughput_fps > 0
                ):
                    gain = previous.figures.throughput_fps / before.figures.throughput_fps - 1
                    if gain < min_gain:
                        return "skip", (
                            f"throughput stopped growing: nireq {previous.values['nireq']} gave "
                            f"{_fmt(previous.figures.throughput_fps)} FPS against "
                            f"{_fmt(before.figures.throughput_fps)} FPS at nireq "
                            f"{before.values['nireq']} ({gain * 100:+.1f}%, under the "
                            f"{min_gain * 100:g}% minimum gain)"
                        )
            return "queue", None
    if "batch" in point.values and has_latency_bound:
        smaller = _neighbour(points, point, "batch", 1)
        if smaller is not None:
            smaller_first = _first_of_chain(points, smaller)
            if smaller_first.status == "skipped":
                return "skip", smaller_first.skip_reason
            if smaller_first.status not in DECIDED:
                return "wait", None
            if smaller_first.status == "succeeded" and smaller_first.figures is not None:
                broken = _latency_broken(smaller_first.figures, constraints)
                if broken:
                    return "skip", (
                        f"batch {smaller.values['batch']} already broke the bound at "
                        f"{label(smaller_first.values)} ({'; '.join(broken)}): a bigger batch "
                        "only makes each request longer"
                    )
    return "queue", None


def decide(
    points: Sequence[PointState],
    strategy: Strategy,
    constraints: SweepConstraints,
    min_gain: float = DEFAULT_MIN_GAIN,
) -> Decision:
    """Which pending points to queue now and which to skip (module docstring: Search).

    Deciding again after a change gives the rest: skipped points are final, a point waits
    while the one its fate depends on is still to run.
    """
    decision = Decision()
    states = list(points)
    for point in states:
        if point.status != "pending":
            continue
        if strategy == "grid":
            decision.queue.append(point.index)
            continue
        step, reason = _search_step(states, point, constraints, min_gain)
        if step == "queue":
            decision.queue.append(point.index)
        elif step == "skip":
            point_reason = reason or "skipped"
            decision.skip[point.index] = point_reason
            # later points of the chain see it as skipped in this same pass
            states[states.index(point)] = PointState(
                point.index, point.values, "skipped", None, point_reason
            )
    return decision


# -------------------------------------------------------------------- the answer
class PointRead(BaseModel):
    """One point of a sweep, as the table shows it."""

    index: int
    values: dict[str, str | int] = Field(description="The swept options' values at this point")
    label: str = Field(description="The values as text: nireq=4 nstreams=2 batch=1")
    status: PointStatus
    job_id: str | None = Field(description="The child job (null: not queued, or skipped)")
    throughput_fps: float | None
    latency_median_ms: float | None
    latency_p90_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    verdict: str | None = Field(description="The stability verdict of the point's result")
    measured_s: float | None = Field(description="The measured loops, every repeat")
    setup_s: float | None = Field(description="Reading, compiling and the first inference")
    nstreams_used: int | None = Field(description="The streams the device really used")
    nireq_used: int | None = Field(description="The infer requests the run really used")
    meets_constraints: bool | None = Field(description="null until it has succeeded")
    violations: list[str] = Field(description="The bounds it broke")
    pareto: bool = Field(description="On the Pareto front of throughput and constrained latency")
    skip_reason: str | None = None
    error: str | None = Field(default=None, description="Why the point's job failed")


class SweepSummary(BaseModel):
    """What a sweep found."""

    best: int | None = Field(description="Index of the best point meeting the constraints")
    closest: int | None = Field(
        description="When no point meets them: the point closest to meeting them"
    )
    message: str = Field(description="The finding in one sentence")
    pareto_metric: str = Field(description="The latency the Pareto front trades throughput for")
    pareto: list[int] = Field(description="Indices on the Pareto front, quickest first")
    notes: list[str] = Field(default_factory=list)


def pareto_metric(objective: Objective, constraints: SweepConstraints) -> str:
    bounds = constraints.latency_bounds()
    if bounds:
        return next(iter(bounds))
    return objective if objective != "throughput_fps" else "latency_p99_ms"


def pareto_front(points: Sequence[PointState], metric: str) -> list[int]:
    """Indices of the succeeded points no other beats on throughput and `metric`, quickest
    first (equal points are both on it)."""
    measured = [
        (p.index, p.figures.throughput_fps, latency)
        for p in points
        if p.status == "succeeded"
        and p.figures is not None
        and (latency := p.figures.metric(metric)) is not None
    ]
    front = [
        (index, fps, latency)
        for index, fps, latency in measured
        if not any(
            f >= fps and lat <= latency and (f > fps or lat < latency) for _, f, lat in measured
        )
    ]
    front.sort(key=lambda item: (item[2], -item[1], item[0]))
    return [index for index, _, _ in front]


def _score(figures: PointFigures, objective: Objective) -> float:
    """Larger is better."""
    if objective == "throughput_fps":
        return figures.throughput_fps
    value = figures.metric(objective)
    return float("-inf") if value is None else -value


def _describe(point: PointState, metric: str) -> str:
    assert point.figures is not None
    latency = point.figures.metric(metric)
    shown = f", {_SHORT[metric]} {_fmt(latency)} ms" if latency is not None else ""
    return f"#{point.index} {label(point.values)}: {_fmt(point.figures.throughput_fps)} FPS{shown}"


def _bounds_text(constraints: SweepConstraints) -> str:
    parts = [f"{_SHORT[n]} ≤ {_fmt(b)} ms" for n, b in constraints.latency_bounds().items()]
    if constraints.throughput_fps is not None:
        parts.append(f"throughput ≥ {_fmt(constraints.throughput_fps)} FPS")
    return " and ".join(parts)


def _nothing_succeeded(points: Sequence[PointState]) -> str:
    if any(p.status not in DECIDED for p in points):
        return "No point has succeeded yet"
    failed = sum(1 for p in points if p.status == "failed")
    if failed:
        return f"No point succeeded: {failed} failed (see each point's error)"
    return "No point ran to the end: the sweep was cancelled"


def summarize(
    points: Sequence[PointState], objective: Objective, constraints: SweepConstraints
) -> SweepSummary:
    """The best point under the constraints (or the closest), the Pareto front, and notes."""
    metric = pareto_metric(objective, constraints)
    front = pareto_front(points, metric)
    succeeded = [p for p in points if p.status == "succeeded" and p.figures is not None]
    shown_metric = objective if objective != "throughput_fps" else metric
    if not succeeded:
        return SweepSummary(
            best=None,
            closest=None,
            message=_nothing_succeeded(points),
            pareto_metric=metric,
            pareto=front,
        )
    meeting = [p for p in succeeded if not violations(p.figures, constraints)]  # type: ignore[arg-type]
    notes: list[str] = []
    if not meeting:
        closest = min(succeeded, key=lambda p: (_excess(p.figures, constraints), p.index))  # type: ignore[arg-type]
        broken = "; ".join(violations(closest.figures, constraints))  # type: ignore[arg-type]
        return SweepSummary(
            best=None,
            closest=closest.index,
            message=f"No point meets {_bounds_text(constraints)}; the closest is "
            f"{_describe(closest, shown_metric)} ({broken})",
            pareto_metric=metric,
            pareto=front,
        )
    ranked = sorted(meeting, key=lambda p: (-_score(p.figures, objective), p.index))  # type: ignore[arg-type]
    best = ranked[0]
    under = f" under {_bounds_text(constraints)}" if _bounds_text(constraints) else ""
    if len(ranked) > 1:
        runner_up = ranked[1]
        a, b = _score(best.figures, objective), _score(runner_up.figures, objective)  # type: ignore[arg-type]
        if a and b and abs(a - b) / abs(a) < DEFAULT_MIN_GAIN:
            notes.append(
                f"The runner-up {_describe(runner_up, shown_metric)} is within "
                f"{abs(a - b) / abs(a) * 100:.1f}% of the best: within run-to-run noise on a "
                "shared host; rerun both with repeats to tell them apart"
            )
    if best.figures is not None and best.figures.verdict not in (None, "stable"):
        notes.append(f"The best point's stability verdict is {best.figures.verdict}")
    return SweepSummary(
        best=best.index,
        closest=None,
        message=f"Best{under}: {_describe(best, shown_metric)}",
        pareto_metric=metric,
        pareto=front,
        notes=notes,
    )


def point_reads(
    points: Sequence[PointState],
    constraints: SweepConstraints,
    summary: SweepSummary,
    job_ids: Mapping[int, str | None],
    errors: Mapping[int, str | None],
) -> list[PointRead]:
    """The table: every point with its figures and how it stands against the constraints."""
    front = set(summary.pareto)
    rows = []
    for p in points:
        f = p.figures
        broken = violations(f, constraints) if f is not None and p.status == "succeeded" else []
        rows.append(
            PointRead(
                index=p.index,
                values=p.values,
                label=label(p.values),
                status=p.status,
                job_id=job_ids.get(p.index),
                throughput_fps=f.throughput_fps if f else None,
                latency_median_ms=f.latency_median_ms if f else None,
                latency_p90_ms=f.latency_p90_ms if f else None,
                latency_p95_ms=f.latency_p95_ms if f else None,
                latency_p99_ms=f.latency_p99_ms if f else None,
                verdict=f.verdict if f else None,
                measured_s=f.measured_s if f else None,
                setup_s=f.setup_s if f else None,
                nstreams_used=f.nstreams if f else None,
                nireq_used=f.nireq if f else None,
                meets_constraints=(not broken)
                if f is not None and p.status == "succeeded"
                else None,
                violations=broken,
                pareto=p.index in front,
                skip_reason=p.skip_reason,
                error=errors.get(p.index),
            )
        )
    return rows


SweepStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def sweep_status(points: Sequence[PointState], cancel_requested: bool) -> SweepStatus:
    """A sweep's status from its points: finished once every point is decided (cancelled when
    asked to, else succeeded when any point succeeded, else failed); before that running once
    any point started, else queued."""
    if all(p.status in DECIDED for p in points):
        if cancel_requested:
            return "cancelled"
        return "succeeded" if any(p.status == "succeeded" for p in points) else "failed"
    started = any(p.status == "running" or p.status in DECIDED - {"skipped"} for p in points)
    return "running" if started else "queued"
