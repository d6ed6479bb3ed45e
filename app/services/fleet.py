"""Fleet mode, the API's side of the agents: registration, heartbeats, a job's claim, progress
and outcome, which blobs an agent may read, and the hosts' views for users.

An agent is known by its token alone (settings `agent_tokens`: name=token): it acts only as
that host, reads only the files of jobs routed to that host while they are queued or running,
and has no access to the user routes (it cannot submit jobs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.dispatch.placement import heartbeat_age_s, host_state
from app.errors import ConflictError, ForbiddenError, NotFoundError
from app.settings import Settings
from app.store import Store
from app.store.tables import ACTIVE_STATUSES, DatasetRow, HostRow, JobRow, ModelRow, utcnow

logger = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class HostView:
    """A host as `GET /hosts` shows it."""

    row: HostRow
    state: str
    heartbeat_age_s: float
    current_job_id: str | None
    queue_depth: int


def host_views(
    store: Store, settings: Settings, names: Sequence[str] | None = None
) -> list[HostView]:
    now = utcnow()
    loads = store.hosts.loads()
    rows = store.hosts.list_all() if names is None else [store.hosts.get(n) for n in names]
    views = []
    for row in rows:
        load = loads.get(row.name)
        running = load.running.id if load is not None and load.running is not None else None
        views.append(
            HostView(
                row=row,
                state=host_state(row, load, now, settings.heartbeat_timeout_s),
                heartbeat_age_s=heartbeat_age_s(row, now),
                current_job_id=running or row.current_job_id,
                queue_depth=len(load.queued) if load is not None else 0,
            )
        )
    return views


def register(
    store: Store,
    host: str,
    labels: dict[str, str],
    devices: list[dict[str, Any]],
    facts: dict[str, Any],
    agent_version: str,
) -> list[str]:
    """Record the host's agent as started; jobs it left `running` fail `worker_lost` (a new
    agent under this name means the one that ran them is gone). Returns their ids."""
    store.hosts.register(host, labels, devices, facts, agent_version)
    lost = store.jobs.fail_running(
        "worker_lost",
        f"The agent of host {host} restarted while this job ran (its process died); it is not "
        "rerun: submit it again",
        host=host,
    )
    if lost:
        logger.warning("host %s restarted: %d running job(s) marked worker_lost", host, len(lost))
    return lost


def heartbeat(store: Store, host: str, current_job_id: str | None) -> HostRow:
    row = store.hosts.heartbeat(host, current_job_id)
    if row is None:
        raise NotFoundError(
            f"Host {host!r} is not registered; register first", code="host_not_registered"
        )
    return row


def claim(store: Store, host: str, job_id: str, token: str) -> JobRow:
    """queued -> running for the agent of `host`; 409 `not_claimable` when the job is not
    queued for it (a duplicate message, a cancel, a job of another host). The same `token`
    again (a retry whose answer was lost) gets the job it claimed."""
    try:
        row = store.jobs.claim(job_id, host, token)
    except IntegrityError:
        # Another job is `running` here, but the agent asking runs nothing (one at a time):
        # that job lost its agent. Fail it, then claim.
        store.jobs.fail_running(
            "worker_lost",
            f"The agent of host {host} took a new job while this one was recorded as running "
            "(its run was lost); submit it again",
            host=host,
        )
        row = store.jobs.claim(job_id, host, token)
    store.hosts.heartbeat(host, row.id if row is not None else None)  # it is alive, and says so
    if row is None:
        job = store.jobs.get(job_id)
        raise ConflictError(
            f"Job {job_id!r} is {job.status}"
            + (f" and routed to host {job.host!r}" if job.host != host else "")
            + "; nothing to run",
            code="not_claimable",
            details={"status": job.status, "host": job.host},
        )
    return row


def job_files(store: Store, job: JobRow) -> tuple[ModelRow, DatasetRow | None]:
    model = store.catalog.get_model(job.model_id)
    dataset = store.catalog.get_dataset(job.dataset_id) if job.dataset_id else None
    return model, dataset


def own_job(store: Store, host: str, job_id: str) -> JobRow:
    job = store.jobs.get(job_id)
    if job.host != host:
        raise ForbiddenError(f"Job {job_id!r} is not routed to host {host!r}", code="not_your_job")
    return job


def finish(
    store: Store,
    host: str,
    job_id: str,
    status: Outcome,
    result: dict[str, Any] | None,
    error_code: str | None,
    error_message: str | None,
) -> JobRow:
    """Store a run's outcome (only while the job runs on this host; 409 otherwise)."""
    own_job(store, host, job_id)
    if status == "succeeded":
        if not result:
            raise ConflictError("A succeeded job needs its result", code="result_missing")
        done = store.jobs.finish_succeeded(job_id, result, host=host)
    elif status == "cancelled":
        done = store.jobs.finish_cancelled(
            job_id, result, error_message or "Cancelled on request", host=host
        )
    else:
        done = store.jobs.finish_failed(
            job_id, error_code or "internal_error", error_message or "The run failed", host=host
        )
    store.hosts.heartbeat(host, None)  # alive, and free for the next job
    job = store.jobs.get(job_id)
    if not done:
        raise ConflictError(
            f"Job {job_id!r} is {job.status} (no longer running on {host}); outcome not stored",
            code="not_running",
            details={"status": job.status},
        )
    return job


def may_read_blob(store: Store, host: str, sha256: str) -> bool:
    """Whether `sha256` is a file of a model or dataset of a job queued or running on `host`."""
    with store.session() as s:
        jobs = s.execute(
            select(JobRow.model_id, JobRow.dataset_id).where(
                JobRow.host == host, JobRow.status.in_(ACTIVE_STATUSES)
            )
        ).all()
        model_ids = {m for m, _ in jobs}
        dataset_ids = {d for _, d in jobs if d is not None}
        file_lists: list[list[Mapping[str, Any]]] = []
        if model_ids:
            file_lists += s.scalars(select(ModelRow.files).where(ModelRow.id.in_(model_ids)))
        if dataset_ids:
            file_lists += s.scalars(select(DatasetRow.files).where(DatasetRow.id.in_(dataset_ids)))
    return any(f.get("sha256") == sha256 for files in file_lists for f in files)
