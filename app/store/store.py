"""The store: the single source of truth shared by the API and the worker.

Models, datasets and jobs live in the database; their files live in the `BlobStore`.
Every state transition of a job is one conditional UPDATE (``... WHERE status = ...``),
so a claim, a cancel and a finish can never overwrite each other.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.engine.spec import DeviceInfo, Progress
from app.errors import ConflictError, NotFoundError, QueueFullError, ValidationError
from app.store.blobs import BlobStore
from app.store.database import make_engine, migrate
from app.store.tables import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    DatasetRow,
    DeviceRow,
    JobRow,
    ModelRow,
    WorkerRow,
    utcnow,
)

logger = logging.getLogger(__name__)

WORKER_SLOT = 1


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LastResult:
    model_id: str
    model_name: str
    device: str
    api: str
    throughput_fps: float
    latency_median_ms: float | None


class Store:
    """Database + blobs for one data dir."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str | None = None,
        max_data_bytes: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.data_dir, max_data_bytes=max_data_bytes)
        self.engine: Engine = make_engine(
            database_url or f"sqlite:///{self.data_dir / 'ovbench.db'}"
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._version_lock = threading.Lock()
        self._version_connection: sqlite3.Connection | None = None

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        with self._version_lock:
            if self._version_connection is not None:
                self._version_connection.close()
                self._version_connection = None
        self.engine.dispose()

    def change_token(self) -> int | None:
        """A number that changes whenever any connection of any process commits to the
        database, for caches of what the database says; None where the backend has no such
        counter (then nothing may be cached).

        SQLite's `PRAGMA data_version` on a connection of its own that never writes: one
        read of the WAL index, a few microseconds.
        """
        if self.engine.dialect.name != "sqlite" or self.engine.url.database in (
            None,
            "",
            ":memory:",
        ):
            return None
        with self._version_lock:
            if self._version_connection is None:
                self._version_connection = sqlite3.connect(
                    self.engine.url.database, isolation_level=None, check_same_thread=False
                )
            row = self._version_connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def session(self) -> Session:
        return self._sessions()

    # ---------------------------------------------------------------- models
    def find_model_by_sha(self, sha256: str) -> ModelRow | None:
        with self.session() as s:
            return s.scalars(select(ModelRow).where(ModelRow.sha256 == sha256)).first()

    def add_model(self, row: ModelRow) -> tuple[ModelRow, bool]:
        """Insert, or return the model with the same content: (row, created)."""
        with self.session() as s:
            existing = s.scalars(select(ModelRow).where(ModelRow.sha256 == row.sha256)).first()
            if existing is not None:
                return existing, False
            s.add(row)
            s.commit()
        logger.info(
            "model %s stored (%s, %s, %d bytes)", row.id, row.name, row.format, row.size_bytes
        )
        return row, True

    def get_model(self, model_id: str) -> ModelRow:
        with self.session() as s:
            row = s.get(ModelRow, model_id)
        if row is None:
            raise NotFoundError(f"No model with id {model_id!r}", code="model_not_found")
        return row

    def list_models(self) -> Sequence[ModelRow]:
        with self.session() as s:
            return s.scalars(
                select(ModelRow).order_by(ModelRow.created_at.desc(), ModelRow.id)
            ).all()

    def delete_model(self, model_id: str) -> None:
        with self.session() as s:
            row = s.get(ModelRow, model_id)
            if row is None:
                raise NotFoundError(f"No model with id {model_id!r}", code="model_not_found")
            self._refuse_if_used(s, JobRow.model_id == model_id, f"model {model_id!r}")
            s.delete(row)
            s.commit()
        self.blobs.remove_dir(self.blobs.model_dir(model_id))
        self.release_blobs(f["sha256"] for f in row.files)
        logger.info("model %s deleted", model_id)

    def model_dir(self, row: ModelRow) -> Path:
        """The model's files under safe names (`model.xml` + `model.bin`, `model.onnx`...)."""
        return self.blobs.materialise(
            self.blobs.model_dir(row.id), {f["name"]: f["sha256"] for f in row.files}
        )

    # -------------------------------------------------------------- datasets
    def add_dataset(self, row: DatasetRow) -> DatasetRow:
        with self.session() as s:
            s.add(row)
            s.commit()
        logger.info("dataset %s stored (%d files)", row.id, row.count)
        return row

    def get_dataset(self, dataset_id: str) -> DatasetRow:
        with self.session() as s:
            row = s.get(DatasetRow, dataset_id)
        if row is None:
            raise NotFoundError(f"No dataset with id {dataset_id!r}", code="dataset_not_found")
        return row

    def list_datasets(self) -> Sequence[DatasetRow]:
        with self.session() as s:
            return s.scalars(
                select(DatasetRow).order_by(DatasetRow.created_at.desc(), DatasetRow.id)
            ).all()

    def delete_dataset(self, dataset_id: str) -> None:
        with self.session() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise NotFoundError(f"No dataset with id {dataset_id!r}", code="dataset_not_found")
            self._refuse_if_used(s, JobRow.dataset_id == dataset_id, f"dataset {dataset_id!r}")
            s.delete(row)
            s.commit()
        self.blobs.remove_dir(self.blobs.dataset_dir(dataset_id))
        self.release_blobs(f["sha256"] for f in row.files)
        logger.info("dataset %s deleted", dataset_id)

    def dataset_dir(self, row: DatasetRow) -> Path:
        return self.blobs.materialise(
            self.blobs.dataset_dir(row.id), {f["name"]: f["sha256"] for f in row.files}
        )

    def _refuse_if_used(self, s: Session, condition: Any, what: str) -> None:
        in_use = s.scalars(
            select(JobRow.id).where(condition, JobRow.status.in_(ACTIVE_STATUSES)).limit(5)
        ).all()
        if in_use:
            raise ConflictError(
                f"The {what} is used by a queued or running job; cancel it or wait for it to finish",
                code="in_use",
                details={"job_ids": list(in_use)},
            )

    def release_blobs(self, shas: Iterable[str]) -> None:
        """Delete blobs that no model or dataset references any more."""
        candidates = set(shas)
        if not candidates:
            return
        with self.session() as s:
            for files in s.scalars(select(ModelRow.files)):
                candidates -= {f["sha256"] for f in files}
            for files in s.scalars(select(DatasetRow.files)):
                candidates -= {f["sha256"] for f in files}
        for sha in candidates:
            self.blobs.delete(sha)

    # ------------------------------------------------------------------ jobs
    def create_job(self, params: dict[str, Any], max_queue: int) -> JobRow:
        """Queue a job for an existing model (and dataset); 503 when the queue is full."""
        row, _ = self.submit_job(params, max_queue)
        return row

    def find_idempotent_job(self, idempotency_key: str, request_hash: str) -> JobRow | None:
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

    def submit_job(
        self,
        params: dict[str, Any],
        max_queue: int,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[JobRow, bool]:
        """Queue a job: (row, created). With a key, a repeat returns the first job, unqueued.

        The key is stored with the job in the same INSERT (unique index), so two concurrent
        requests with one key create one job; the loser reads the winner's.
        """
        if idempotency_key is not None:
            request_hash = request_hash or ""
            existing = self.find_idempotent_job(idempotency_key, request_hash)
            if existing is not None:
                return existing, False
            try:
                return self._insert_job(params, max_queue, idempotency_key, request_hash), True
            except IntegrityError:
                existing = self.find_idempotent_job(idempotency_key, request_hash)
                if existing is None:
                    raise
                return existing, False
        return self._insert_job(params, max_queue, None, None), True

    def _insert_job(
        self,
        params: dict[str, Any],
        max_queue: int,
        idempotency_key: str | None,
        request_hash: str | None,
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
            row = JobRow(
                id=new_id(),
                status="queued",
                params=params,
                model_id=model_id,
                dataset_id=dataset_id,
                device=params["device"],
                api=params["api"],
                created_at=utcnow(),
                progress_fraction=0.0,
                progress_iterations=0,
                progress_elapsed_s=0.0,
                cancel_requested=False,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
            )
            s.add(row)
            s.commit()
        logger.info("job %s queued (model %s, %s, %s)", row.id, model_id, row.device, row.api)
        return row

    def get_job(self, job_id: str) -> JobRow:
        with self.session() as s:
            row = s.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
        return row

    def list_job_heads(
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

    def job_head(self, job_id: str) -> tuple[str, str]:
        """(id, status) of one job; 404 when there is none."""
        with self.session() as s:
            job_status = s.scalar(select(JobRow.status).where(JobRow.id == job_id))
        if job_status is None:
            raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
        return job_id, job_status

    def get_jobs(self, job_ids: Sequence[str]) -> Sequence[JobRow]:
        if not job_ids:
            return []
        with self.session() as s:
            return s.scalars(select(JobRow).where(JobRow.id.in_(job_ids))).all()

    def queue_positions(self, jobs: Sequence[JobRow]) -> dict[str, int]:
        """1-based position among queued jobs (1 = next to run), for the queued ones."""
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
                        or_(
                            JobRow.created_at < job.created_at,
                            (JobRow.created_at == job.created_at) & (JobRow.id < job.id),
                        ),
                    )
                )
                return {job.id: (ahead or 0) + 1}
            order = s.scalars(
                select(JobRow.id)
                .where(JobRow.status == "queued")
                .order_by(JobRow.created_at, JobRow.id)
            ).all()
        positions = {job_id: i + 1 for i, job_id in enumerate(order)}
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
                s.commit()
                logger.info("job %s cancelled while queued", job_id)
                return self.get_job(job_id)
            flagged = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running")
                .values(cancel_requested=True)
            )
            s.commit()
        if flagged.rowcount == 1:  # type: ignore[attr-defined]
            logger.info("job %s cancel requested while running", job_id)
            return self.get_job(job_id)
        job = self.get_job(job_id)
        raise ConflictError(
            f"Job {job_id!r} already finished ({job.status}); nothing to cancel",
            code="job_finished",
            details={"status": job.status},
        )

    def delete_job(self, job_id: str) -> None:
        with self.session() as s:
            done = s.execute(
                delete(JobRow).where(JobRow.id == job_id, JobRow.status.in_(FINISHED_STATUSES))
            )
            s.commit()
        if done.rowcount == 1:  # type: ignore[attr-defined]
            logger.info("job %s deleted", job_id)
            return
        job = self.get_job(job_id)
        raise ConflictError(
            f"Job {job_id!r} is {job.status}; only finished jobs can be deleted (cancel it first)",
            code="job_not_finished",
            details={"status": job.status},
        )

    # ------------------------------------------------------ worker side of jobs
    def claim_next_job(self, worker_pid: int) -> JobRow | None:
        """Atomically move the oldest queued job to running and return it."""
        while True:
            with self.session() as s:
                candidate = s.scalars(
                    select(JobRow.id)
                    .where(JobRow.status == "queued")
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
                return self.get_job(candidate)

    def update_progress(self, job_id: str, progress: Progress) -> None:
        with self.session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running")
                .values(
                    progress_fraction=progress.fraction,
                    progress_iterations=progress.iterations,
                    progress_elapsed_s=progress.elapsed_s,
                )
            )
            s.commit()

    def is_cancel_requested(self, job_id: str) -> bool:
        with self.session() as s:
            flag = s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id))
        return bool(flag)

    def _finish(self, job_id: str, status: str, values: dict[str, Any]) -> bool:
        now = utcnow()
        with self.session() as s:
            started = s.scalar(select(JobRow.started_at).where(JobRow.id == job_id))
            run_s = (now - started).total_seconds() if started is not None else None
            done = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "running")
                .values(status=status, finished_at=now, run_duration_s=run_s, **values)
            )
            s.commit()
        return done.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    def finish_succeeded(self, job_id: str, result: dict[str, Any]) -> bool:
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
        )
        if ok:
            logger.info("job %s succeeded (%.2f fps)", job_id, result.get("throughput_fps", 0.0))
        return ok

    def finish_cancelled(self, job_id: str, result: dict[str, Any] | None, message: str) -> bool:
        ok = self._finish(
            job_id,
            "cancelled",
            {"result": result, "error_code": "cancelled", "error_message": message},
        )
        if ok:
            logger.info("job %s cancelled: %s", job_id, message)
        return ok

    def finish_failed(self, job_id: str, code: str, message: str) -> bool:
        ok = self._finish(job_id, "failed", {"error_code": code, "error_message": message})
        if ok:
            logger.info("job %s failed [%s]: %s", job_id, code, message)
        return ok

    def fail_running_jobs(
        self, code: str, message: str, worker_pid: int | None = None
    ) -> list[str]:
        """Mark running jobs (of one worker pid, or all) failed; returns their ids."""
        conditions = [JobRow.status == "running"]
        if worker_pid is not None:
            conditions.append(JobRow.worker_pid == worker_pid)
        with self.session() as s:
            ids = list(s.scalars(select(JobRow.id).where(*conditions)).all())
        failed = [job_id for job_id in ids if self.finish_failed(job_id, code, message)]
        return failed

    def any_job_running(self) -> bool:
        with self.session() as s:
            return (
                s.scalar(select(JobRow.id).where(JobRow.status == "running").limit(1)) is not None
            )

    def running_jobs(self) -> Sequence[JobRow]:
        """Jobs currently `running` (of any worker)."""
        with self.session() as s:
            return s.scalars(select(JobRow).where(JobRow.status == "running")).all()

    def cancel_running_jobs(self, message: str, worker_pid: int | None = None) -> list[str]:
        conditions = [JobRow.status == "running"]
        if worker_pid is not None:
            conditions.append(JobRow.worker_pid == worker_pid)
        with self.session() as s:
            ids = list(s.scalars(select(JobRow.id).where(*conditions)).all())
        return [job_id for job_id in ids if self.finish_cancelled(job_id, None, message)]

    # ------------------------------------------------------------- retention
    def sweep_unreferenced(self, grace_s: float = 0.0) -> int:
        """Delete files no model, dataset or job refers to; returns how many were removed.

        Blobs not named by any model or dataset, model and dataset directories whose row is
        gone, and staging files. Only files older than `grace_s` go, so a periodic sweep
        never races an upload between its blob commit and its database row; at start-up
        (no request in flight) `grace_s=0` removes them all. Jobs refer to models and
        datasets by id, so their files stay as long as those rows do.
        """
        with self.session() as s:
            shas: set[str] = set()
            for files in s.scalars(select(ModelRow.files)):
                shas.update(f["sha256"] for f in files)
            for files in s.scalars(select(DatasetRow.files)):
                shas.update(f["sha256"] for f in files)
            model_ids = set(s.scalars(select(ModelRow.id)))
            dataset_ids = set(s.scalars(select(DatasetRow.id)))
        removed = self.blobs.sweep(shas, model_ids, dataset_ids, grace_s)
        if removed:
            logger.info("retention sweep removed %d unreferenced file(s)", removed)
        return removed

    # ------------------------------------------------------- devices, worker
    def replace_devices(self, devices: Sequence[DeviceInfo]) -> None:
        now = utcnow()
        with self.session() as s:
            s.execute(delete(DeviceRow))
            for d in devices:
                s.add(
                    DeviceRow(
                        name=d.name, full_name=d.full_name, properties=d.properties, seen_at=now
                    )
                )
            s.commit()

    def list_devices(self) -> Sequence[DeviceRow]:
        with self.session() as s:
            return s.scalars(select(DeviceRow).order_by(DeviceRow.name)).all()

    def record_worker_start(self, pid: int) -> None:
        now = utcnow()
        with self.session() as s:
            row = s.get(WorkerRow, WORKER_SLOT)
            if row is None:
                s.add(WorkerRow(id=WORKER_SLOT, pid=pid, started_at=now, heartbeat_at=now))
            else:
                row.pid, row.started_at, row.heartbeat_at, row.current_job_id = pid, now, now, None
            s.commit()

    def heartbeat(self, pid: int, current_job_id: str | None) -> None:
        with self.session() as s:
            s.execute(
                update(WorkerRow)
                .where(WorkerRow.id == WORKER_SLOT, WorkerRow.pid == pid)
                .values(heartbeat_at=utcnow(), current_job_id=current_job_id)
            )
            s.commit()

    def read_worker(self) -> WorkerRow | None:
        with self.session() as s:
            return s.get(WorkerRow, WORKER_SLOT)

    def clear_worker(self, pid: int | None = None) -> None:
        """Forget the worker slot (of that pid, or whichever worker it names)."""
        conditions = [WorkerRow.id == WORKER_SLOT]
        if pid is not None:
            conditions.append(WorkerRow.pid == pid)
        with self.session() as s:
            s.execute(delete(WorkerRow).where(*conditions))
            s.commit()

    # --------------------------------------------------------------- metrics
    def count_jobs_by_status(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
        return {status: count for status, count in rows}

    def run_durations(self, buckets: Sequence[float]) -> tuple[list[int], int, float]:
        """Cumulative counts per bucket upper bound, total count and sum of job run seconds."""
        with self.session() as s:
            count, total = s.execute(
                select(
                    func.count(JobRow.run_duration_s),
                    func.coalesce(func.sum(JobRow.run_duration_s), 0.0),
                )
            ).one()
            cumulative = [
                s.scalar(
                    select(func.count()).select_from(JobRow).where(JobRow.run_duration_s <= bound)
                )
                or 0
                for bound in buckets
            ]
        return cumulative, int(count or 0), float(total or 0.0)

    def last_results(self) -> list[LastResult]:
        """The newest succeeded job per (model, device, api)."""
        with self.session() as s:
            rows = s.execute(
                select(
                    JobRow.model_id,
                    ModelRow.name,
                    JobRow.device,
                    JobRow.api,
                    JobRow.throughput_fps,
                    JobRow.latency_median_ms,
                    JobRow.finished_at,
                )
                .join(ModelRow, ModelRow.id == JobRow.model_id)
                .where(JobRow.status == "succeeded", JobRow.throughput_fps.is_not(None))
                .order_by(JobRow.finished_at)
            ).all()
        latest: dict[tuple[str, str, str], LastResult] = {}
        for model_id, name, device, api, fps, latency, _finished in rows:
            latest[(model_id, device, api)] = LastResult(
                model_id, name, device, api, float(fps or 0.0), latency
            )
        return list(latest.values())
