"""Job figures for /metrics: counts by status, the jobs that ended since a time, and the newest
result per model, device, api and effective configuration."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.store.tables import JobRow, ModelRow

FINAL_STATUSES = ("succeeded", "failed", "cancelled")
_IDS_PER_QUERY = 500  # bound on the parameters of one `IN (...)`


@dataclass(frozen=True)
class EndedJob:
    """A job in a final state: what the job counters and the duration histogram count."""

    id: str
    finished_at: datetime
    status: str
    error_code: str | None
    run_duration_s: float | None


@dataclass(frozen=True)
class ResultKey:
    """What tells two last results apart: the model, where and how it ran, and the effective
    config the result read back from the compiled model (None: the result does not say)."""

    model_id: str
    device: str
    api: str
    hint: str | None
    nireq: int | None
    batch: int | None


@dataclass(frozen=True)
class LastResult:
    model_id: str
    model_name: str
    device: str
    api: str
    hint: str | None
    nireq: int | None
    batch: int | None
    throughput_fps: float
    latency_median_ms: float | None
    finished_at: datetime
    # The result's `latency_ms` figures (median, p90, p95, p99 ...); empty when none completed.
    latency_ms: dict[str, float] = field(default_factory=dict)


class JobStats:
    """Read-only aggregates over the jobs table.

    It remembers each succeeded job's effective config (hint, nireq, batch) once read: a
    finished job's result never changes, and reading it from every result's JSON at every
    scrape would read the whole table's results each time.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions
        self._configs: dict[str, tuple[str | None, int | None, int | None]] = {}
        self._configs_lock = threading.Lock()

    def count_by_status(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
        return {status: count for status, count in rows}

    def ended_since(self, since: datetime | None) -> list[EndedJob]:
        """Jobs in a final state that finished at or after `since` (None: all), oldest first."""
        query = select(
            JobRow.id, JobRow.finished_at, JobRow.status, JobRow.error_code, JobRow.run_duration_s
        ).where(JobRow.status.in_(FINAL_STATUSES), JobRow.finished_at.is_not(None))
        if since is not None:
            query = query.where(JobRow.finished_at >= since)
        with self.session() as s:
            rows = s.execute(query.order_by(JobRow.finished_at, JobRow.id)).all()
        return [
            EndedJob(job_id, finished_at, status, error_code, run_s)
            for job_id, finished_at, status, error_code, run_s in rows
            if finished_at is not None  # never: the query leaves them out (typing)
        ]

    def last_results(self) -> list[LastResult]:
        """The newest succeeded job (by finished_at, then id) per `ResultKey`: one series per
        model, device, api, hint, nireq and batch. Jobs of a deleted model are left out."""
        with self.session() as s:
            rows = s.execute(
                select(JobRow.id, JobRow.model_id, JobRow.device, JobRow.api, JobRow.finished_at)
                .join(ModelRow, ModelRow.id == JobRow.model_id)
                .where(
                    JobRow.status == "succeeded",
                    JobRow.throughput_fps.is_not(None),
                    JobRow.finished_at.is_not(None),
                )
            ).all()
            configs = self._configs_of(s, [row.id for row in rows])
            newest: dict[ResultKey, tuple[datetime, str]] = {}
            for job_id, model_id, device, api, finished_at in rows:
                if finished_at is None or job_id not in configs:  # deleted since the listing
                    continue
                key = ResultKey(model_id, device, api, *configs[job_id])
                if key not in newest or (finished_at, job_id) > newest[key]:
                    newest[key] = (finished_at, job_id)
            keys = {job_id: key for key, (_finished, job_id) in newest.items()}
            figures = [
                row
                for chunk in _chunks(list(keys))
                for row in s.execute(
                    select(
                        JobRow.id,
                        ModelRow.name,
                        JobRow.throughput_fps,
                        JobRow.latency_median_ms,
                        JobRow.finished_at,
                        JobRow.result["latency_ms"],
                    )
                    .join(ModelRow, ModelRow.id == JobRow.model_id)
                    .where(JobRow.id.in_(chunk))
                ).all()
            ]
        return [
            LastResult(
                model_id=keys[job_id].model_id,
                model_name=name,
                device=keys[job_id].device,
                api=keys[job_id].api,
                hint=keys[job_id].hint,
                nireq=keys[job_id].nireq,
                batch=keys[job_id].batch,
                throughput_fps=float(fps),
                latency_median_ms=median_ms,
                finished_at=finished_at,
                latency_ms=_numbers(latency),
            )
            for job_id, name, fps, median_ms, finished_at, latency in figures
        ]

    def _configs_of(
        self, s: Session, job_ids: list[str]
    ) -> dict[str, tuple[str | None, int | None, int | None]]:
        """(hint, nireq, batch) of each job's result config, read once per job (jobs no longer
        listed are forgotten; a job deleted meanwhile is missing from the answer)."""
        with self._configs_lock:
            known = {j: self._configs[j] for j in job_ids if j in self._configs}
        unread = [job_id for job_id in job_ids if job_id not in known]
        read: dict[str, tuple[str | None, int | None, int | None]] = {}
        for chunk in _chunks(unread):
            for job_id, hint, nireq, batch in s.execute(
                select(
                    JobRow.id,
                    JobRow.result[("config", "hint")].as_string(),
                    JobRow.result[("config", "nireq")].as_integer(),
                    JobRow.result[("config", "batch_size")].as_integer(),
                ).where(JobRow.id.in_(chunk))
            ).all():
                read[job_id] = (hint, nireq, batch)
        listed = set(job_ids)
        with self._configs_lock:
            self._configs.update(read)
            for gone in [job_id for job_id in self._configs if job_id not in listed]:
                del self._configs[gone]
        return {**known, **read}


def _chunks(job_ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(job_ids), _IDS_PER_QUERY):
        yield job_ids[start : start + _IDS_PER_QUERY]


def _numbers(latency: Any) -> dict[str, float]:
    """The numeric figures of a result's `latency_ms` (None when no request completed)."""
    if not isinstance(latency, dict):
        return {}
    return {
        name: float(value)
        for name, value in latency.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
