"""Sweeps, the answer: the best point under the constraints (or the closest), the Pareto
front of throughput against the constrained latency, and the table of points.

Pure, as `engine.sweep` (which expands the points and decides which run): the service and
the CLI both read a sweep through these.

- **Best point**: among succeeded points that meet the constraints, the highest throughput
  (objective `throughput_fps`) or the lowest latency percentile named by the objective; ties
  go to the earlier point. When no point meets them, the closest is the one whose worst
  bound is exceeded by the smallest share.
- **Pareto front**: throughput against the constrained latency (the first latency bound in
  `LATENCY_METRICS` order, else the objective's latency, else p99): the points no other point
  beats on both (at least as fast and as quick, better in one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from app.engine.sweep import (
    DECIDED,
    DEFAULT_MIN_GAIN,
    SHORT_NAMES,
    Objective,
    PointFigures,
    PointState,
    PointStatus,
    SweepConstraints,
    format_figure,
    label,
    violations,
)


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
    shown = f", {SHORT_NAMES[metric]} {format_figure(latency)} ms" if latency is not None else ""
    return f"#{point.index} {label(point.values)}: {format_figure(point.figures.throughput_fps)} FPS{shown}"


def _bounds_text(constraints: SweepConstraints) -> str:
    parts = [
        f"{SHORT_NAMES[n]} ≤ {format_figure(b)} ms" for n, b in constraints.latency_bounds().items()
    ]
    if constraints.throughput_fps is not None:
        parts.append(f"throughput ≥ {format_figure(constraints.throughput_fps)} FPS")
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
