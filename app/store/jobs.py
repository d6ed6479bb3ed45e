"""Jobs: submit, read, cancel, delete, and the worker's side (claim, progress, finish).

Every state transition of a job is one conditional UPDATE (``... WHERE status = ...``), so a
claim, a cancel and a finish can never overwrite each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Update, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.engine.spec import Progress
from app.errors import ConflictError, NotFoundError, QueueFullError, ValidationError
from app.store.deliveries import delete_final_deliveries, delivery_row
from app.store.tables import (
    FINISHED_STATUSES,
    DatasetRow,
    JobRow,
    ModelRow,
    new_id,
    utcnow,
)

logger = logging.getLogger(__name__)


def progress_update(job_id: str, progress: Progress) -> Update:
    """The statement that records a running job's progress (nothing once it has ended)."""
    return (
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status == "running")
        .values(
            progress_fraction=progress.fraction,
            progress_iterations=progress.iterations,
            progress_elapsed_s=progress.elapsed_s,
        )
    )


def queued_job_row(
    params: dict[str, Any],
    host: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    rerun_of: str | None = None,
    sweep_id: str | None = None,
) -> JobRow:
    """A new job as it is queued (the caller adds it to its session)."""
    return JobRow(
        id=new_id(),
        status="queued",
        params=params,
        model_id=params["model_id"],
        dataset_id=params.get("dataset_id"),
        device=params["device"],
        api=params["api"],
        created_at=utcnow(),
        progress_fraction=0.0,
        progress_iterations=0,
        progress_elapsed_s=0.0,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        host=host,
        rerun_of=rerun_of,
        sweep_id=sweep_id,
    )


def _add_delivery(s: Session, job_id: str, status: str, now: datetime) -> None:
    """In the session that just ended job `job_id` as `status`: its webhook delivery, when
    it was submitted with a `callback_url` (committed with the end, or not at all)."""
    params = s.scalar(select(JobRow.params).where(JobRow.id == job_id))
    url = (params or {}).get("callback_url")
    if url:
        s.add(delivery_row("job", job_id, status, url, now))


class Jobs:
    """The job queue and every job's state, results and the figures /metrics reads.

    `on_sweep_child_ended(sweep_id)` is called after a job of a sweep ended, whichever
    process ended it (the Store wires it to `Sweeps.advance`).
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions
        self.on_sweep_child_ended: Callable[[str], object] | None = None

    def _ended(self, job_id: str, sweep_id: str | None = None, look_up: bool = False) -> None:
        """A job ended: let its sweep decide what runs next (never fails the caller)."""
        try:
            if look_up:
                with self.session() as s:
                    sweep_id = s.scalar(select(JobRow.sweep_id).where(JobRow.id == job_id))
            if sweep_id is not None and self.on_sweep_child_ended is not None:
                self.on_sweep_child_ended(sweep_id)
        except Exception:
            logger.exception("job %s ended, but advancing its sweep %s failed", job_id, sweep_id)

    # ------------------------------------------------------------------ jobs
    def create(self, params: dict[str, Any], max_queue: int) -> JobRow:
        """Queue a job for an existing model (and dataset); 503 when the queue is full."""
        row, _ = self.submit(params, max_queue)
        return row

    def find_idempotent(self, idempotency_key: str, request_hash: str) -> JobRow | None:
        """The job created earlier with this `Idempotency-Key`, or None.

        The same key with a different request (another `request_hash`) is a client bug:
        422 `idempotency_key_reused`, naming the job the key belongs to.
        """
        with self.session() as s:
            row = s.scalars(select(JobRow).where(JobRow.idempotency_key == idempotency_key)).first()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise ValidationError(
                f"Idempotency-Key {idempotency_key!r} was already used for job {row.id} with a "
                "different request; use a new key for a new job",
                code="idempotency_key_reused",
                details={"job_id": row.id},
            )
        return row

    def submit(
        self,
        params: dict[str, Any],
        max_queue: int,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        host: str | None = None,
        rerun_of: str | None = None,
    ) -> tuple[JobRow, bool]:
        """Queue a job: (row, created). With a key, a repeat returns the first job, unqueued.

        The key is stored with the job in the same INSERT (unique index), so two concurrent
        requests with one key create one job; the loser reads the winner's. `host`: the fleet
        host the job is routed to (None on a single host).
        """
        if idempotency_key is not None:
            request_hash = request_hash or ""
            existing = self.find_idempotent(idempotency_key, request_hash)
            if existing is not None:
                return existing, False
            try:
                row = self._insert_job(
                    params, max_queue, idempotency_key, request_hash, host, rerun_of
                )
                return row, True
            except IntegrityError:
                existing = self.find_idempotent(idempotency_key, request_hash)
                if existing is None:
                    raise
                return existing, False
        return self._insert_job(params, max_queue, None, None, host, rerun_of), True

    def _insert_job(
        self,
        params: dict[str, Any],
        max_queue: int,
        idempotency_key: str | None,
        request_hash: str | None,
        host: str | None = None,
        rerun_of: str | None = None,
    ) -> JobRow:
        model_id = params["model_id"]
        dataset_id = params.get("dataset_id")
        with self.session() as s:
            if s.get(ModelRow, model_id) is None:
                raise NotFoundError(f"No model with id {model_id!r}", code="model_not_found")
            if dataset_id is not None and s.get(DatasetRow, dataset_id) is None:
                raise NotFoundError(f"No dataset with id {dataset_id!r}", code="dataset_not_found")
            depth = s.scalar(
                select(func.count()).select_from(JobRow).where(JobRow.status == "queued")
            )
            if (depth or 0) >= max_queue:
                raise QueueFullError(
                    f"The queue is full ({max_queue} jobs waiting); retry later",
                    details={"max_queue": max_queue},
                )
            row = queued_job_row(params, host, idempotency_key, request_hash, rerun_of)
            s.add(row)
            s.commit()
        logger.info(
            "job %s queued (model %s, %s, %s%s)",
            *(row.id, model_id, row.device, row.api, f", host {host}" if host else ""),
        )
        return row

    def get(self, job_id: str) -> JobRow:
        with self.session() as s:
            row = s.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
        return row

    def list_heads(
        self,
        status: str | None = None,
        model_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[tuple[str, str]], int]:
        """(id, status) newest first, and the total matching: cheap enough to poll."""
        conditions = []
        if status is not None:
            conditions.append(JobRow.status == status)
        if model_id is not None:
            conditions.append(JobRow.model_id == model_id)
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(JobRow).where(*conditions)) or 0
            heads = s.execute(
                select(JobRow.id, JobRow.status)
                .where(*conditions)
                .order_by(JobRow.created_at.desc(), JobRow.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [(job_id, job_status) for job_id, job_status in heads], total

    def head(self, job_id: str) -> tuple[str, str]:
        """(id, status) of one job; 404 when there is none."""
        with self.session() as s:
            job_status = s.scalar(select(JobRow.status).where(JobRow.id == job_id))
        if job_status is None:
            raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
        return job_id, job_status

    def get_many(self, job_ids: Sequence[str]) -> Sequence[JobRow]:
        if not job_ids:
            return []
        with self.session() as s:
            return s.scalars(select(JobRow).where(JobRow.id.in_(job_ids))).all()

    def queue_positions(self, jobs: Sequence[JobRow]) -> dict[str, int]:
        """1-based position among queued jobs (1 = next to run), for the queued ones; in fleet
        mode among the jobs queued for the same host."""
        queued = [j for j in jobs if j.status == "queued"]
        if not queued:
            return {}
        with self.session() as s:
            if len(queued) == 1:
                job = queued[0]
                ahead = s.scalar(
                    select(func.count())
                    .select_from(JobRow)
                    .where(
                        JobRow.status == "queued",
                        JobRow.host.is_(None) if job.host is None else JobRow.host == job.host,
                        or_(
                            JobRow.created_at < job.created_at,
                            (JobRow.created_at == job.created_at) & (JobRow.id < job.id),
                        ),
                    )
                )
                return {job.id: (ahead or 0) + 1}
            order = s.execute(
                select(JobRow.id, JobRow.host)
                .where(JobRow.status == "queued")
                .order_by(JobRow.created_at, JobRow.id)
            ).all()
        positions: dict[str, int] = {}
        per_host: dict[str | None, int] = {}
        for job_id, host in order:
            per_host[host] = positions[job_id] = per_host.get(host, 0) + 1
        return {j.id: positions[j.id] for j in queued if j.id in positions}

    def queue_depth(self) -> int:
        with self.session() as s:
            return (
                s.scalar(select(func.count()).select_from(JobRow).where(JobRow.status == "queued"))
                or 0
            )

    def request_cancel(self, job_id: str) -> JobRow:
        """Cancel a queued job now, or flag a running one for the worker; 409 when finished."""
        now = utcnow()
        with self.session() as s:
            done = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "queued")
                .values(
                    status="cancelled",
                    cancel_requested=True,
                    finished_at=now,
                    error_code="cancelled",
                    error_message="Cancelled before it started",
                )
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                _add_delivery(s, job_id, "cancelled", now)
                s.commit()
                logger.info("job %s cancelled while queued", job_id)
                self._ended(job_id, look_up=True)
                return self.get(job_id)
            flagged = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running")
                .values(cancel_requested=True)
            )
            s.commit()
        if flagged.rowcount == 1:  # type: ignore[attr-defined]
            logger.info("job %s cancel requested while running", job_id)
            return self.get(job_id)
        job = self.get(job_id)
        raise ConflictError(
            f"Job {job_id!r} already finished ({job.status}); nothing to cancel",
            code="job_finished",
            details={"status": job.status},
        )

    def delete(self, job_id: str) -> None:
        """Delete a finished job with its final webhook deliveries, in one transaction (a
        pending one is left to finish, then to `Deliveries.remove_orphaned`); 409 while it
        runs, or when it is a point of a sweep (delete the sweep: the job is a row of its
        table)."""
        with self.session() as s:
            sweep_id = s.scalar(select(JobRow.sweep_id).where(JobRow.id == job_id))
            if sweep_id is not None:
                raise ConflictError(
                    f"Job {job_id!r} is a point of sweep {sweep_id!r}; delete the sweep "
                    f"(DELETE /sweeps/{sweep_id}) to remove it with its other points",
                    code="job_in_sweep",
                    details={"sweep_id": sweep_id},
                )
            done = s.execute(
                delete(JobRow).where(JobRow.id == job_id, JobRow.status.in_(FINISHED_STATUSES))
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                delete_final_deliveries(s, "job", [job_id])
            s.commit()
        if done.rowcount == 1:  # type: ignore[attr-defined]
            logger.info("job %s deleted", job_id)
            return
        job = self.get(job_id)
        raise ConflictError(
            f"Job {job_id!r} is {job.status}; only finished jobs can be deleted (cancel it first)",
            code="job_not_finished",
            details={"status": job.status},
        )

    # ------------------------------------------------------ worker side of jobs
    def claim_next(self, worker_pid: int) -> JobRow | None:
        """Atomically move the oldest queued job to running and return it (the local worker:
        only jobs routed to no fleet host)."""
        while True:
            with self.session() as s:
                candidate = s.scalars(
                    select(JobRow.id)
                    .where(JobRow.status == "queued", JobRow.host.is_(None))
                    .order_by(JobRow.created_at, JobRow.id)
                    .limit(1)
                ).first()
                if candidate is None:
                    return None
                claimed = s.execute(
                    update(JobRow)
                    .where(JobRow.id == candidate, JobRow.status == "queued")
                    .values(status="running", started_at=utcnow(), worker_pid=worker_pid)
                )
                s.commit()
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                logger.info("job %s running (worker pid %d)", candidate, worker_pid)
                return self.get(candidate)

    def claim(self, job_id: str, host: str, token: str) -> JobRow | None:
        """Fleet: move the queued job `job_id`, routed to `host`, to running; None when it is
        not queued for that host (already run, cancelled, failed, or routed elsewhere).

        `token` names this claim: the same claim again (its answer was lost on the way) gets
        the job it claimed, as long as it runs.

        IntegrityError when another job is `running` on `host` (the one-running-per-host
        index): the caller decides what that job is.
        """
        with self.session() as s:
            claimed = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "queued", JobRow.host == host)
                .values(status="running", started_at=utcnow(), worker_pid=None, claim_token=token)
            )
            s.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            with self.session() as s:
                again = s.scalars(
                    select(JobRow).where(
                        JobRow.id == job_id,
                        JobRow.status == "running",
                        JobRow.host == host,
                        JobRow.claim_token == token,
                    )
                ).first()
            if again is not None:
                logger.info("job %s: claim %s repeated by host %s", job_id, token, host)
            return again
        logger.info("job %s running on host %s", job_id, host)
        return self.get(job_id)

    def mark_dispatched(self, job_ids: Sequence[str]) -> None:
        """Fleet: the broker took these queued jobs' messages now."""
        if not job_ids:
            return
        with self.session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id.in_(job_ids), JobRow.status == "queued")
                .values(dispatched_at=utcnow())
            )
            s.commit()

    def update_progress(self, job_id: str, progress: Progress) -> None:
        with self.session() as s:
            s.execute(progress_update(job_id, progress))
            s.commit()

    def is_cancel_requested(self, job_id: str) -> bool:
        with self.session() as s:
            flag = s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id))
        return bool(flag)

    def _finish(
        self, job_id: str, status: str, values: dict[str, Any], host: str | None = None
    ) -> bool:
        """running -> `status` (with `host`: only while it runs on that host), and its webhook
        delivery when it has a `callback_url`, in the same transaction.

        Every end of a running job comes here (worker, supervisor, fleet agents, start-up);
        the ends of queued jobs (`request_cancel`, `fail_queued`) add theirs likewise."""
        now = utcnow()
        conditions = [JobRow.id == job_id, JobRow.status == "running"]
        if host is not None:
            conditions.append(JobRow.host == host)
        with self.session() as s:
            started, sweep_id = s.execute(
                select(JobRow.started_at, JobRow.sweep_id).where(JobRow.id == job_id)
            ).one_or_none() or (None, None)
            run_s = (now - started).total_seconds() if started is not None else None
            done = s.execute(
                update(JobRow)
                .where(*conditions)
                .values(status=status, finished_at=now, run_duration_s=run_s, **values)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                _add_delivery(s, job_id, status, now)
            s.commit()
        ended: bool = done.rowcount == 1  # type: ignore[attr-defined]
        if ended:
            self._ended(job_id, sweep_id)
        return ended

    def finish_succeeded(
        self, job_id: str, result: dict[str, Any], host: str | None = None
    ) -> bool:
        """Store the result and mark the job succeeded, in one statement (one transaction).

        A CHECK constraint (migration 0002) refuses `succeeded` without a result as well.
        """
        if not result:
            raise ValueError(f"job {job_id}: succeeded needs a result")
        latency = result.get("latency_ms") or {}
        ok = self._finish(
            job_id,
            "succeeded",
            {
                "result": result,
                "progress_fraction": 1.0,
                "progress_iterations": int(result.get("iterations", 0)),
                "progress_elapsed_s": float(result.get("duration_ms", 0.0)) / 1000,
                "throughput_fps": result.get("throughput_fps"),
                "latency_median_ms": latency.get("median"),
            },
            host,
        )
        if ok:
            logger.info("job %s succeeded (%.2f fps)", job_id, result.get("throughput_fps", 0.0))
        return ok

    def finish_cancelled(
        self,
        job_id: str,
        result: dict[str, Any] | None,
        message: str,
        host: str | None = None,
    ) -> bool:
        ok = self._finish(
            job_id,
            "cancelled",
            {"result": result, "error_code": "cancelled", "error_message": message},
            host,
        )
        if ok:
            logger.info("job %s cancelled: %s", job_id, message)
        return ok

    def finish_failed(self, job_id: str, code: str, message: str, host: str | None = None) -> bool:
        ok = self._finish(job_id, "failed", {"error_code": code, "error_message": message}, host)
        if ok:
            logger.info("job %s failed [%s]: %s", job_id, code, message)
        return ok

    def fail_running(
        self, code: str, message: str, worker_pid: int | None = None, host: str | None = None
    ) -> list[str]:
        """Mark running jobs (of one worker pid or fleet host, or all) failed; returns their ids."""
        conditions = [JobRow.status == "running"]
        if worker_pid is not None:
            conditions.append(JobRow.worker_pid == worker_pid)
        if host is not None:
            conditions.append(JobRow.host == host)
        with self.session() as s:
            ids = list(s.scalars(select(JobRow.id).where(*conditions)).all())
        return [job_id for job_id in ids if self.finish_failed(job_id, code, message, host)]

    def fail_queued(self, job_id: str, code: str, message: str) -> bool:
        """queued -> failed (fleet: its host never came to start it)."""
        now = utcnow()
        with self.session() as s:
            done = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "queued")
                .values(status="failed", finished_at=now, error_code=code, error_message=message)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                _add_delivery(s, job_id, "failed", now)
            s.commit()
        if done.rowcount == 1:  # type: ignore[attr-defined]
            logger.info("job %s failed while queued [%s]: %s", job_id, code, message)
            self._ended(job_id, look_up=True)
            return True
        return False

    def any_running(self) -> bool:
        with self.session() as s:
            return (
                s.scalar(select(JobRow.id).where(JobRow.status == "running").limit(1)) is not None
            )

    def running(self) -> Sequence[JobRow]:
        """Jobs currently `running` (of any worker)."""
        with self.session() as s:
            return s.scalars(select(JobRow).where(JobRow.status == "running")).all()

    def cancel_running(self, message: str, worker_pid: int | None = None) -> list[str]:
        conditions = [JobRow.status == "running"]
        if worker_pid is not None:
            conditions.append(JobRow.worker_pid == worker_pid)
        with self.session() as s:
            ids = list(s.scalars(select(JobRow.id).where(*conditions)).all())
        return [job_id for job_id in ids if self.finish_cancelled(job_id, None, message)]
