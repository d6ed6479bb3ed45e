"""Sweeps, the pure part: a grid of run options expanded to points, which points a search
runs or skips, and whether a point meets the constraints (`engine.sweep_summary`: the best
point, the Pareto front and the table).

No I/O: the service stores a sweep's points and their jobs, the CLI runs them in-process;
both ask these modules what the figures mean.

- **Points.** `expand` takes {axis: [values]} for any of `SWEEP_AXES` and gives their
  cartesian product, outer axis first in `SWEEP_AXES` order, so `nireq` (the innermost) varies
  fastest; the numeric axes (`batch`, `nireq`) run in ascending order.
- **Constraints** are upper bounds on the top-level (median run's) latencies, and a lower
  bound on throughput. A point meets them when every bound holds.
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
SHORT_NAMES = {"latency_p99_ms": "p99", "latency_p95_ms": "p95", "latency_p90_ms": "p90"}
SHORT_NAMES["latency_median_ms"] = "median latency"

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


def format_figure(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.1f}"


def violations(figures: PointFigures, constraints: SweepConstraints) -> list[str]:
    """Each bound the figures break, as a phrase: `p99 23.4 ms > 20 ms`."""
    broken: list[str] = []
    for name, bound in constraints.latency_bounds().items():
        value = figures.metric(name)
        if value is None:
            broken.append(f"{SHORT_NAMES[name]} not measured (no request completed)")
        elif value > bound:
            broken.append(
                f"{SHORT_NAMES[name]} {format_figure(value)} ms > {format_figure(bound)} ms"
            )
    floor = constraints.throughput_fps
    if floor is not None and figures.throughput_fps < floor:
        broken.append(
            f"throughput {format_figure(figures.throughput_fps)} FPS < {format_figure(floor)} FPS"
        )
    return broken


def _latency_broken(figures: PointFigures, constraints: SweepConstraints) -> list[str]:
    only_latency = constraints.model_copy(update={"throughput_fps": None})
    return violations(figures, only_latency)


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


def _until_decided(dependency: PointState) -> tuple[str, str | None] | None:
    """A point's fate while the one it depends on is skipped (skip: the same reason) or still
    to run (wait); None once that one ended."""
    if dependency.status == "skipped":
        return "skip", dependency.skip_reason
    if dependency.status not in DECIDED:
        return "wait", None
    return None


def _broken_bounds(point: PointState, constraints: SweepConstraints) -> str:
    """The latency bounds a succeeded point broke, as text ('' for none, or not succeeded)."""
    if point.status != "succeeded" or point.figures is None:
        return ""
    return "; ".join(_latency_broken(point.figures, constraints))


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
            pending = _until_decided(previous)
            if pending is not None:
                return pending
            if previous.status == "succeeded" and previous.figures is not None:
                broken = _broken_bounds(previous, constraints)
                if broken:
                    return "skip", (
                        f"nireq {previous.values['nireq']} already broke the bound "
                        f"({broken}): more requests in flight only wait longer"
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
                            f"{format_figure(previous.figures.throughput_fps)} FPS against "
                            f"{format_figure(before.figures.throughput_fps)} FPS at nireq "
                            f"{before.values['nireq']} ({gain * 100:+.1f}%, under the "
                            f"{min_gain * 100:g}% minimum gain)"
                        )
            return "queue", None
    if "batch" in point.values and has_latency_bound:
        smaller = _neighbour(points, point, "batch", 1)
        if smaller is not None:
            smaller_first = _first_of_chain(points, smaller)
            pending = _until_decided(smaller_first)
            if pending is not None:
                return pending
            broken = _broken_bounds(smaller_first, constraints)
            if broken:
                return "skip", (
                    f"batch {smaller.values['batch']} already broke the bound at "
                    f"{label(smaller_first.values)} ({broken}): a bigger batch only makes "
                    "each request longer"
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
