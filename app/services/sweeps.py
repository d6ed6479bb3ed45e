"""What `/sweeps` means: a grid over one model expanded to points, each checked as a job,
estimated and limited, then stored with its first points queued (store.sweeps advances it);
the sweep as the table, best point and Pareto front users read, as JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pydantic

from app.api.job_views import delivery_read
from app.api.sweep_schemas import (
    SweepCreate,
    SweepEstimate,
    SweepProgress,
    SweepRead,
    SweepTiming,
)
from app.dispatch import Dispatcher
from app.engine.defaults import resolve_options
from app.engine.sweep import SWEEP_AXES, SweepConstraints, expand, label
from app.engine.sweep_summary import point_reads, summarize
from app.errors import ValidationError, describe_validation, validation_details
from app.services.jobs import validate_job
from app.services.webhooks import check_callback_url
from app.settings import Settings
from app.store import Store
from app.store.sweeps import FINISHED_SWEEP_STATUSES, point_states
from app.store.tables import DeliveryRow, SweepRow

logger = logging.getLogger(__name__)


def _parse(data: Any) -> SweepCreate:
    try:
        return SweepCreate.model_validate(data)
    except pydantic.ValidationError as exc:
        details = validation_details(exc.errors())
        for err in details:
            err["loc"] = ["body", *err["loc"]]
        raise ValidationError(describe_validation(details), details=details) from exc


def _check_grid(sweep: SweepCreate, axes: dict[str, list[Any]], settings: Settings) -> None:
    """422 for a base option the grid also sets, and for too many points (before expanding)."""
    clash = sorted(set(axes) & sweep.model_fields_set)
    if clash:
        raise ValidationError(
            f"{', '.join(clash)} given both as a base option and in the grid; give each option "
            "in one place: remove it from the base, or from the grid",
            code="conflicting_fields",
            details={"fields": clash},
        )
    if not axes:
        raise ValidationError(
            f"The grid is empty; give at least one of {', '.join(SWEEP_AXES)} with a list of "
            'values, e.g. {"nireq": [1, 2, 4]}',
            code="empty_grid",
        )
    if "nireq" in axes and "api" not in axes and sweep.api == "sync":
        if "api" in sweep.model_fields_set:
            raise ValidationError(
                "nireq is swept, but api sync runs one request at a time, so every nireq "
                'would be the same run; use "api": "async", or sweep api too',
                code="conflicting_fields",
                details={"fields": ["api", "grid.nireq"]},
            )
        sweep.api = "async"  # what sweeping nireq means (the sync default would ignore it)
    count = math.prod(len(values) for values in axes.values())
    if count > settings.sweep_max_points:
        raise ValidationError(
            f"The grid has {count} points, more than this server's limit of "
            f"{settings.sweep_max_points} (OVBENCH_SWEEP_MAX_POINTS); sweep fewer values, or "
            "split it into several sweeps",
            code="sweep_too_large",
            details={"points": count, "max_points": settings.sweep_max_points},
        )


def _point_params(
    sweep: SweepCreate,
    axes: dict[str, list[Any]],
    store: Store,
    settings: Settings,
    dispatcher: Dispatcher,
) -> list[dict[str, Any]]:
    """Every point's job parameters, each checked as POST /jobs checks a job (422 naming the
    point and the grid axis), with the host it runs on."""
    base = sweep.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"grid", "strategy", "objective", "constraints", "min_gain", "callback_url"},
        exclude_unset=False,
    )
    points: list[dict[str, Any]] = []
    hosts: dict[str, str | None] = {}
    seen: dict[tuple[tuple[str, Any], ...], str] = {}
    for values in expand(axes):
        try:
            job = validate_job({**base, **values}, store, settings, None)
        except ValidationError as exc:
            details = exc.details if isinstance(exc.details, list) else []
            for err in details:
                loc = err.get("loc") if isinstance(err, dict) else None
                if loc and len(loc) > 1 and loc[1] in axes:
                    err["loc"] = ["body", "grid", loc[1]]
            raise ValidationError(
                f"Grid point {label(values)}: {exc.message}",
                code=exc.code,
                details=exc.details,
            ) from exc
        params = job.model_dump(mode="json", exclude_none=True)
        normalized = {axis: params[axis] for axis in values}
        key = tuple(sorted(normalized.items()))
        if key in seen:
            raise ValidationError(
                f"The grid gives the point {label(normalized)} twice (as {seen[key]} and "
                f"{label(values)}); list each value once",
                code="duplicate_grid_values",
                details={"point": normalized},
            )
        seen[key] = label(values)
        if job.device not in hosts:
            hosts[job.device] = dispatcher.place(job.device, job.host, job.host_labels)
        points.append(
            {
                "index": len(points),
                "values": normalized,
                "params": params,
                "host": hosts[job.device],
            }
        )
    return points


def _estimate(points: list[dict[str, Any]], repeats: int, settings: Settings) -> SweepEstimate:
    durations = [
        resolve_options(p["params"], settings.default_duration_s).duration_s for p in points
    ]
    measured = None if any(d is None for d in durations) else sum(durations) * repeats  # type: ignore[arg-type,misc]
    note = (
        "points x duration x repeats; reading, compiling and the host guard add to it"
        if measured is not None
        else "the points are bounded by niter only: their time is not known before they run"
    )
    return SweepEstimate(points=len(points), repeats=repeats, measured_s=measured, note=note)


def create_sweep(
    store: Store, dispatcher: Dispatcher, settings: Settings, data: Any
) -> tuple[SweepRow, SweepEstimate]:
    """POST /sweeps: check, estimate, limit, then store the sweep and queue its first points."""
    sweep = _parse(data)
    store.catalog.get_model(sweep.model_id)  # 404 model_not_found before any other check
    if sweep.dataset_id is not None:
        store.catalog.get_dataset(sweep.dataset_id)
    axes = sweep.grid.axes()
    _check_grid(sweep, axes, settings)
    check_callback_url(sweep.callback_url, settings)  # the sweep's own, not its points'
    points = _point_params(sweep, axes, store, settings, dispatcher)
    estimate = _estimate(points, sweep.repeats, settings)
    limit_s = settings.sweep_max_hours * 3600
    if estimate.measured_s is not None and estimate.measured_s > limit_s:
        raise ValidationError(
            f"The sweep would measure for about {estimate.measured_s / 3600:.2f} h "
            f"({len(points)} points x duration x {sweep.repeats} repeats), more than this "
            f"server's limit of {settings.sweep_max_hours:g} h (OVBENCH_SWEEP_MAX_HOURS); "
            "shorten duration_s, lower repeats or sweep fewer values",
            code="sweep_too_large",
            details={
                "points": len(points),
                "estimated_s": estimate.measured_s,
                "max_hours": settings.sweep_max_hours,
            },
        )
    grid = {axis: list(dict.fromkeys(p["values"][axis] for p in points)) for axis in axes}
    params: dict[str, Any] = {
        "grid": grid,
        "base": {k: v for k, v in points[0]["params"].items() if k not in axes},
        "strategy": sweep.strategy,
        "objective": sweep.objective,
        "constraints": sweep.constraints.model_dump(exclude_none=True),
        "min_gain": sweep.min_gain,
        "estimate": estimate.model_dump(),
        **({"callback_url": sweep.callback_url} if sweep.callback_url else {}),
    }
    with dispatcher.placing():
        row, jobs = store.sweeps.create(
            params, points, sweep.model_id, sweep.dataset_id, settings.max_queue
        )
    for job in jobs:
        dispatcher.job_queued(job.id, job.host)
    return row, estimate


def advance(store: Store, dispatcher: Dispatcher, sweep_id: str) -> SweepRow:
    """Move an active sweep on (a repair when a process died between a job's end and its
    sweep's advance), handing new jobs to the dispatcher; the sweep as it stands."""
    for job in store.sweeps.advance(sweep_id):
        dispatcher.job_queued(job.id, job.host)
    return store.sweeps.get(sweep_id)


def _seconds(start: datetime, end: datetime | None) -> float:
    return ((end or datetime.now(UTC)) - start).total_seconds()


def sweep_read(
    store: Store, row: SweepRow, deliveries: Sequence[DeliveryRow] | None = None
) -> SweepRead:
    """The sweep as users read it: progress, the table, the best point, the Pareto front,
    and its webhook deliveries (`deliveries`: store.deliveries.for_subjects's, read here
    when None)."""
    if deliveries is None:
        deliveries = store.deliveries.for_subjects([row.id]).get(row.id, [])
    children = store.sweeps.children(row.id)
    states = point_states(row, children)
    params = row.params
    constraints = SweepConstraints.model_validate(params.get("constraints") or {})
    summary = summarize(states, params["objective"], constraints)
    job_ids = {p["index"]: p.get("job_id") for p in row.points}
    errors = {
        p["index"]: children[p["job_id"]].error_message
        for p in row.points
        if p.get("job_id") in children and children[p["job_id"]].status == "failed"
    }
    points = point_reads(states, constraints, summary, job_ids, errors)
    done = sum(1 for s in states if s.status in ("succeeded", "failed", "cancelled", "skipped"))
    skipped = sum(1 for s in states if s.status == "skipped")
    figures = [s.figures for s in states if s.figures is not None]
    return SweepRead(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        model_id=row.model_id,
        dataset_id=row.dataset_id,
        created_at=row.created_at,
        finished_at=row.finished_at,
        strategy=params["strategy"],
        objective=params["objective"],
        constraints=constraints,
        min_gain=params["min_gain"],
        grid=params["grid"],
        base=params["base"],
        estimate=SweepEstimate.model_validate(params["estimate"]),
        progress=SweepProgress(
            points_total=row.points_total,
            points_done=done,
            points_skipped=skipped,
            fraction=done / row.points_total if row.points_total else 1.0,
        ),
        timing=SweepTiming(
            wall_s=_seconds(row.created_at, row.finished_at),
            jobs_s=sum(job.run_duration_s or 0.0 for job in children.values()),
            measured_s=sum(f.measured_s for f in figures),
            setup_s=sum(f.setup_s for f in figures),
        ),
        points=points,
        summary=summary,
        deliveries=[delivery_read(d) for d in deliveries],
    )


def list_sweeps(
    store: Store, status: str | None, limit: int, offset: int
) -> tuple[list[SweepRead], int]:
    """GET /sweeps: a page of sweeps, newest first (their deliveries read at once), and how
    many match."""
    rows, total = store.sweeps.list_page(status, limit, offset)
    deliveries = store.deliveries.for_subjects([row.id for row in rows])
    return [sweep_read(store, row, deliveries.get(row.id, [])) for row in rows], total


def read_sweep(store: Store, dispatcher: Dispatcher, sweep_id: str) -> SweepRead:
    row = store.sweeps.get(sweep_id)
    if row.status not in FINISHED_SWEEP_STATUSES:
        row = advance(store, dispatcher, sweep_id)
    return sweep_read(store, row)


def cancel_sweep(store: Store, dispatcher: Dispatcher, sweep_id: str) -> SweepRead:
    """Cancel every point not yet finished: queued ones at once, a running one within 2 s;
    no further point is queued. 409 when the sweep already finished."""
    store.sweeps.request_cancel(sweep_id)
    return sweep_read(store, advance(store, dispatcher, sweep_id))


# One row per point; the columns a spreadsheet wants (units in the names).
CSV_COLUMNS = (
    "index",
    "label",
    "status",
    *SWEEP_AXES,
    "throughput_fps",
    "latency_median_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "verdict",
    "meets_constraints",
    "violations",
    "pareto",
    "best",
    "nstreams_used",
    "nireq_used",
    "measured_s",
    "setup_s",
    "job_id",
    "skip_reason",
    "error",
)


def sweep_csv(read: SweepRead) -> str:
    """The table as CSV: one row per point, the swept axes as columns (blank when not swept),
    full precision (no rounding away of sub-millisecond latencies)."""
    axes = [axis for axis in SWEEP_AXES if axis in read.grid]
    columns = [c for c in CSV_COLUMNS if c not in SWEEP_AXES or c in axes]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for point in read.points:
        row: dict[str, Any] = point.model_dump(exclude={"values"})
        row.update(point.values)
        row["violations"] = "; ".join(point.violations)
        row["best"] = point.index == read.summary.best
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return out.getvalue()
