"""Serialized job views for polling clients; a finished job's JSON is built once.

A job that reached `succeeded`, `failed` or `cancelled` never changes again (the store only
updates running or queued jobs), so its JSON can be reused as long as the job exists. Every
read still asks the store which jobs exist and their status, so a deleted job is never
served, and queued or running jobs are always read fresh.

A finished job's webhook deliveries (`deliveries`) still change after its end: its JSON is
cached only once every delivery is final (delivered or failed), or when it has none.

`resolved_params` is computed on every build from the stored params and the settings'
`default_duration_s` (fixed for the life of the app), so a cached body stays right.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from app.api.schemas import (
    DeliveryRead,
    JobErrorRead,
    JobParams,
    JobRead,
    ProgressRead,
    ResolvedParams,
)
from app.engine.defaults import resolve_options
from app.engine.spec import BenchmarkResult
from app.store import Store
from app.store.deliveries import FINAL_DELIVERY_STATES
from app.store.tables import DeliveryRow, JobRow

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class FinishedJobJson:
    """LRU of finished jobs' JSON bytes, bounded by total size."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, job_id: str) -> bytes | None:
        body = self._entries.get(job_id)
        if body is not None:
            self._entries.move_to_end(job_id)
        return body

    def put(self, job_id: str, body: bytes) -> None:
        self.discard(job_id)
        if len(body) > self.max_bytes:
            return
        self._entries[job_id] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)

    def discard(self, job_id: str) -> None:
        body = self._entries.pop(job_id, None)
        if body is not None:
            self._bytes -= len(body)


def resolved_params(row: JobRow, default_duration_s: Mapping[str, float]) -> ResolvedParams:
    """The job's params with every default filled in as the engine will apply it."""
    params: Mapping[str, Any] = row.params
    options = resolve_options(params, default_duration_s)
    return ResolvedParams(
        **options.model_dump(),
        model_id=row.model_id,
        dataset_id=row.dataset_id,
        extensions=list(params.get("extensions") or []),
        gpu_config=params.get("gpu_config"),
    )


def job_read(
    row: JobRow,
    queue_position: int | None,
    default_duration_s: Mapping[str, float],
    deliveries: Sequence[DeliveryRow] = (),
) -> JobRead:
    """The one place a job row becomes its wire view (`default_duration_s`: the settings';
    `deliveries`: its webhook deliveries, store.deliveries.for_subjects)."""
    error = None
    if row.error_code is not None and row.status in ("failed", "cancelled"):
        error = JobErrorRead(code=row.error_code, message=row.error_message or "")
    return JobRead(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        host=row.host,
        model_id=row.model_id,
        dataset_id=row.dataset_id,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        params=JobParams.model_validate(row.params),
        resolved_params=resolved_params(row, default_duration_s),
        rerun_of=row.rerun_of,
        sweep_id=row.sweep_id,
        queue_position=queue_position,
        progress=ProgressRead(
            fraction=row.progress_fraction,
            iterations=row.progress_iterations,
            elapsed_s=row.progress_elapsed_s,
        ),
        result=None if row.result is None else BenchmarkResult.model_validate(row.result),
        error=error,
        deliveries=[delivery_read(d) for d in deliveries],
    )


def delivery_read(row: DeliveryRow) -> DeliveryRead:
    return DeliveryRead(
        id=row.id,
        event=row.event,
        url=row.url,
        state=row.state,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
        delivered_at=row.delivered_at,
    )


def webhook_body(
    store: Store, default_duration_s: Mapping[str, float], kind: str, ref: str
) -> bytes:
    """The body of a webhook delivery (app.services.webhooks builds it through this, handed in
    by create_app): a job's JSON as GET /jobs/{id} returns it once it ended, a sweep's as
    GET /sweeps/{id}, each without its `deliveries` (they change as this very delivery goes).
    NotFoundError when it was deleted."""
    if kind == "sweep":
        from app.services.sweeps import sweep_read

        view = sweep_read(store, store.sweeps.get(ref), deliveries=())
        return view.model_dump_json(exclude={"deliveries"}).encode()
    row = store.jobs.get(ref)
    return job_read(row, None, default_duration_s).model_dump_json(exclude={"deliveries"}).encode()


def jobs_json(
    store: Store,
    cache: FinishedJobJson,
    heads: Sequence[tuple[str, str]],
    default_duration_s: Mapping[str, float],
) -> list[bytes]:
    """The JSON of each (id, status) in order: finished ones from the cache when there."""
    bodies: dict[str, bytes] = {}
    for job_id, status in heads:
        if status in FINAL_STATUSES and (cached := cache.get(job_id)) is not None:
            bodies[job_id] = cached
    rows = store.jobs.get_many([job_id for job_id, _ in heads if job_id not in bodies])
    positions = store.jobs.queue_positions(rows)
    deliveries = store.deliveries.for_subjects([row.id for row in rows])
    for row in rows:
        own = deliveries.get(row.id, [])
        view = job_read(row, positions.get(row.id), default_duration_s, own)
        body = view.model_dump_json().encode()
        if row.status in FINAL_STATUSES and all(d.state in FINAL_DELIVERY_STATES for d in own):
            cache.put(row.id, body)
        bodies[row.id] = body
    # A job deleted between the two reads is left out.
    return [bodies[job_id] for job_id, _ in heads if job_id in bodies]
