"""Sweeps: create one with its first points queued, advance it as its jobs end, cancel, delete.

A sweep's row keeps its points (values, job parameters, host, job id, skip reason); its
points run as ordinary jobs (`jobs.sweep_id`) in the one queue. `advance` is the one place
that moves a sweep on: it reads the points' jobs, asks `engine.sweep.decide` what to queue or
skip, and writes the new jobs and the sweep's new points and status in one transaction,
conditional on the revision it read (a concurrent advance makes it read again), so no point
is ever queued twice. Every job end calls it (`Jobs.on_sweep_child_ended`), whichever process
ended the job; reads of an active sweep call it too, which repairs a process that died
between a job's end and its sweep's advance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.engine.sweep import PointState, SweepConstraints, decide, figures_of, sweep_status
from app.errors import ConflictError, NotFoundError, QueueFullError
from app.store.deliveries import delete_final_deliveries, delivery_row
from app.store.jobs import queued_job_row
from app.store.tables import JobRow, SweepRow, new_id, utcnow

logger = logging.getLogger(__name__)

FINISHED_SWEEP_STATUSES = ("succeeded", "failed", "cancelled")
_ADVANCE_ATTEMPTS = 20


@dataclass(frozen=True)
class ChildJob:
    """What a sweep reads of one of its jobs."""

    id: str
    status: str
    result: dict[str, Any] | None
    error_message: str | None
    started_at: Any
    finished_at: Any
    run_duration_s: float | None


def point_states(row: SweepRow, children: dict[str, ChildJob]) -> list[PointState]:
    """The sweep's points as the engine sees them, from the stored points and their jobs."""
    states = []
    for point in row.points:
        state = PointState(point["index"], dict(point["values"]))
        job = children.get(point.get("job_id") or "")
        if point.get("skip_reason") is not None:
            state.status, state.skip_reason = "skipped", point["skip_reason"]
        elif job is not None:
            state.status = job.status  # type: ignore[assignment]
            if job.status == "succeeded" and job.result:
                state.figures = figures_of(job.result)
        elif row.cancel_requested:
            state.status = "cancelled"
        states.append(state)
    return states


class Sweeps:
    """The sweeps and the queueing of their points."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions

    # ------------------------------------------------------------------ create
    def create(
        self,
        params: dict[str, Any],
        points: list[dict[str, Any]],
        model_id: str,
        dataset_id: str | None,
        max_queue: int,
    ) -> tuple[SweepRow, list[JobRow]]:
        """Store a sweep and queue its first points, in one transaction: (sweep, its jobs).

        `points`: [{"index", "values", "params", "host"}] in order. 503 when the queue cannot
        take the points the sweep queues at once.
        """
        row = SweepRow(
            id=new_id(),
            status="queued",
            model_id=model_id,
            dataset_id=dataset_id,
            params=params,
            points=[{**p, "job_id": None, "skip_reason": None} for p in points],
            points_total=len(points),
            revision=0,
            cancel_requested=False,
            created_at=utcnow(),
            finished_at=None,
        )
        with self.session() as s:
            depth = (
                s.scalar(select(func.count()).select_from(JobRow).where(JobRow.status == "queued"))
                or 0
            )
            jobs = self._apply(row, {})
            if depth + len(jobs) > max_queue:
                raise QueueFullError(
                    f"The queue cannot take this sweep's {len(jobs)} jobs ({depth} waiting, "
                    f"at most {max_queue}); retry later or sweep fewer points",
                    details={"max_queue": max_queue, "queued": depth, "sweep_jobs": len(jobs)},
                )
            s.add(row)
            s.add_all(jobs)
            s.commit()
        logger.info(
            "sweep %s queued: %d points, %d jobs queued now", row.id, row.points_total, len(jobs)
        )
        return row, jobs

    # ------------------------------------------------------------------- reads
    def get(self, sweep_id: str) -> SweepRow:
        with self.session() as s:
            row = s.get(SweepRow, sweep_id)
        if row is None:
            raise NotFoundError(f"No sweep with id {sweep_id!r}", code="sweep_not_found")
        return row

    def children(self, sweep_id: str) -> dict[str, ChildJob]:
        with self.session() as s:
            rows = s.execute(
                select(
                    JobRow.id,
                    JobRow.status,
                    JobRow.result,
                    JobRow.error_message,
                    JobRow.started_at,
                    JobRow.finished_at,
                    JobRow.run_duration_s,
                ).where(JobRow.sweep_id == sweep_id)
            ).all()
        return {r[0]: ChildJob(*r) for r in rows}

    def list_page(
        self, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[Sequence[SweepRow], int]:
        """Newest first, and the total matching."""
        conditions = [] if status is None else [SweepRow.status == status]
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(SweepRow).where(*conditions)) or 0
            rows = s.scalars(
                select(SweepRow)
                .where(*conditions)
                .order_by(SweepRow.created_at.desc(), SweepRow.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return rows, total

    def count_by_status(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(SweepRow.status, func.count()).group_by(SweepRow.status)).all()
        return {status: count for status, count in rows}

    # ----------------------------------------------------------------- advance
    def _apply(self, row: SweepRow, children: dict[str, ChildJob]) -> list[JobRow]:
        """Decide on `row` (in memory): record skips, make the jobs to queue, set its status.
        Returns the new jobs (not yet added to the session)."""
        states = point_states(row, children)
        points = [dict(p) for p in row.points]
        jobs: list[JobRow] = []
        if not row.cancel_requested:
            params = row.params
            decision = decide(
                states,
                params["strategy"],
                SweepConstraints.model_validate(params.get("constraints") or {}),
                params["min_gain"],
            )
            for index, reason in decision.skip.items():
                points[index]["skip_reason"] = reason
                states[index].status, states[index].skip_reason = "skipped", reason
            for index in decision.queue:
                job = queued_job_row(points[index]["params"], points[index].get("host"))
                job.sweep_id = row.id
                points[index]["job_id"] = job.id
                states[index].status = "queued"
                jobs.append(job)
        row.points = points
        status = sweep_status(states, row.cancel_requested)
        if status != row.status and status in FINISHED_SWEEP_STATUSES:
            row.finished_at = utcnow()
        row.status = status
        return jobs

    def advance(self, sweep_id: str) -> list[JobRow]:
        """Move the sweep on from its jobs' states: queue and skip points, update its status.
        Returns the jobs it queued (for the dispatcher). A finished sweep is left alone."""
        for _ in range(_ADVANCE_ATTEMPTS):
            row = self.get(sweep_id)
            if row.status in FINISHED_SWEEP_STATUSES:
                return []
            before = (row.status, row.points, row.finished_at)
            jobs = self._apply(row, self.children(sweep_id))
            if (row.status, row.points, row.finished_at) == before and not jobs:
                return []
            with self.session() as s:
                done = s.execute(
                    update(SweepRow)
                    .where(SweepRow.id == sweep_id, SweepRow.revision == row.revision)
                    .values(
                        status=row.status,
                        points=row.points,
                        finished_at=row.finished_at,
                        revision=row.revision + 1,
                    )
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    s.rollback()  # another process advanced it first: read again
                    continue
                s.add_all(jobs)
                url = row.params.get("callback_url")
                if url and row.status in FINISHED_SWEEP_STATUSES:  # it ends here: its webhook
                    s.add(delivery_row("sweep", sweep_id, row.status, url, utcnow()))
                s.commit()
            if jobs:
                logger.info("sweep %s: %d more points queued", sweep_id, len(jobs))
            if row.status != before[0]:
                logger.info("sweep %s %s", sweep_id, row.status)
            return jobs
        raise ConflictError(
            f"Sweep {sweep_id!r} changed under {_ADVANCE_ATTEMPTS} attempts to advance it; retry",
            code="sweep_busy",
        )

    def active_ids(self) -> list[str]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(SweepRow.id).where(SweepRow.status.not_in(FINISHED_SWEEP_STATUSES))
                ).all()
            )

    # --------------------------------------------------------- cancel, delete
    def request_cancel(self, sweep_id: str) -> list[str]:
        """Cancel the sweep in one transaction: no point is queued any more, its queued jobs
        are cancelled and its running one is flagged for the worker (it ends within 2 s).
        Returns the ids of the jobs it cancelled or flagged; 409 when it already finished.
        The caller advances the sweep afterwards (once, not once per job)."""
        now = utcnow()
        with self.session() as s:
            done = s.execute(
                update(SweepRow)
                .where(
                    SweepRow.id == sweep_id,
                    SweepRow.status.not_in(FINISHED_SWEEP_STATUSES),
                )
                .values(cancel_requested=True, revision=SweepRow.revision + 1)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                s.rollback()
                row = self.get(sweep_id)
                raise ConflictError(
                    f"Sweep {sweep_id!r} already finished ({row.status}); nothing to cancel",
                    code="sweep_finished",
                    details={"status": row.status},
                )
            # queued first: a job claimed meanwhile is running by the second statement
            active = JobRow.sweep_id == sweep_id
            affected = list(
                s.scalars(
                    select(JobRow.id).where(active, JobRow.status.in_(("queued", "running")))
                ).all()
            )
            s.execute(
                update(JobRow)
                .where(active, JobRow.status == "queued")
                .values(
                    status="cancelled",
                    cancel_requested=True,
                    finished_at=now,
                    error_code="cancelled",
                    error_message="Cancelled with its sweep before it started",
                )
            )
            s.execute(
                update(JobRow)
                .where(active, JobRow.status == "running")
                .values(cancel_requested=True)
            )
            s.commit()
        logger.info("sweep %s cancelled (%d jobs cancelled or flagged)", sweep_id, len(affected))
        return affected

    def delete(self, sweep_id: str) -> list[str]:
        """Delete a finished sweep with its jobs and the final webhook deliveries of both, in
        one transaction (a pending one is left to finish, then to
        `Deliveries.remove_orphaned`); returns the job ids. 409 while it is queued or running."""
        with self.session() as s:
            row = s.get(SweepRow, sweep_id)
            if row is None:
                raise NotFoundError(f"No sweep with id {sweep_id!r}", code="sweep_not_found")
            if row.status not in FINISHED_SWEEP_STATUSES:
                raise ConflictError(
                    f"Sweep {sweep_id!r} is {row.status}; only finished sweeps can be deleted "
                    f"(cancel it first: POST /sweeps/{sweep_id}/cancel)",
                    code="sweep_not_finished",
                    details={"status": row.status},
                )
            job_ids = list(s.scalars(select(JobRow.id).where(JobRow.sweep_id == sweep_id)).all())
            s.execute(delete(JobRow).where(JobRow.sweep_id == sweep_id))
            s.execute(delete(SweepRow).where(SweepRow.id == sweep_id))
            delete_final_deliveries(s, "sweep", [sweep_id])
            delete_final_deliveries(s, "job", job_ids)
            s.commit()
        logger.info("sweep %s deleted with its %d jobs", sweep_id, len(job_ids))
        return job_ids
