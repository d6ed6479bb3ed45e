"""The store's tables, as SQLAlchemy 2 typed ORM classes.

Portable SQL only (SQLite by default, PostgreSQL with `database_url`): string ids, JSON
columns through `sqlalchemy.JSON` (`json` on PostgreSQL: the text kept as written, key order
included), timestamps stored as naive UTC (`timestamp without time zone` on PostgreSQL, so
the session's TimeZone never shifts them) and read back timezone-aware.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    """An uploaded model: its files (by sha256) and what OpenVINO says about its ports."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[list[Any]] = mapped_column(JSON)
    description: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DatasetRow(Base):
    """A set of input files (images, .npy) stored by sha256."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobRow(Base):
    """One benchmark job, from queued to its result."""

    __tablename__ = "jobs"
    __table_args__ = (
        # `succeeded` only ever comes with its result (migration 0002, which writes the
        # PostgreSQL form: `json` has no `!=`, so there it compares `result::text`).
        CheckConstraint(
            "status != 'succeeded' OR (result IS NOT NULL AND result != 'null')",
            name="ck_jobs_succeeded_has_result",
        ),
        # Fleet mode: no two jobs run on one host at once, whatever any process believes
        # (migration 0003). Local jobs have no host (NULLs are distinct), so it never binds.
        Index(
            "ux_jobs_one_running_per_host",
            "host",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_id: Mapped[str] = mapped_column(String(32), index=True)
    dataset_id: Mapped[str | None] = mapped_column(String(32), index=True)
    device: Mapped[str] = mapped_column(String(255))
    api: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    progress_iterations: Mapped[int] = mapped_column(
        Integer().with_variant(BigInteger(), "postgresql"), default=0
    )
    progress_elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    run_duration_s: Mapped[float | None] = mapped_column(Float)
    throughput_fps: Mapped[float | None] = mapped_column(Float)
    latency_median_ms: Mapped[float | None] = mapped_column(Float)
    # POST /jobs `Idempotency-Key` (unique when set) and a digest of that request's body.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # Fleet mode: the host the job is routed to (and runs on), and when the API last handed
    # it to the broker (null: never, so the sweeper publishes it).
    host: Mapped[str | None] = mapped_column(String(64), index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The agent's claim of it: a retried claim (its answer was lost) gets the job again.
    claim_token: Mapped[str | None] = mapped_column(String(64))
    # POST /jobs/{id}/rerun: the job this one repeats with the same resolved parameters.
    rerun_of: Mapped[str | None] = mapped_column(String(32))
    # The sweep this job is a point of (POST /sweeps), deleted with it.
    sweep_id: Mapped[str | None] = mapped_column(String(32), index=True)


class SweepRow(Base):
    """A sweep: a grid of run options over one model, run as child jobs (`jobs.sweep_id`).

    `points` holds each point's values, its job parameters, its host, its job id once queued
    and its skip reason once skipped; `revision` makes every change of it one conditional
    UPDATE, so two processes advancing the sweep at once never queue a point twice.
    """

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    model_id: Mapped[str] = mapped_column(String(32), index=True)
    dataset_id: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[list[Any]] = mapped_column(JSON)
    points_total: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


DELIVERY_STATES = ("pending", "delivered", "failed")


class DeliveryRow(Base):
    """A webhook delivery (the outbox): written in the transaction that ends its job or
    sweep, sent and retried by the API's sender until delivered or given up (`failed`).

    `next_attempt_at` is also the lease: a sender claims a due row by moving it forward
    (conditional on the value it read and on `claim_token`), so a sender that dies mid-call
    leaves the row due again when the lease runs out. `body` is built at the first attempt
    and kept, so every retry sends the same bytes.
    """

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(8))  # job | sweep
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    event: Mapped[str] = mapped_column(String(32))  # job.succeeded, sweep.failed ...
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_deliveries_state_next", "state", "next_attempt_at"),)


class DeviceRow(Base):
    """A device as the worker's OpenVINO saw it at its last start."""

    __tablename__ = "devices"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(512))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerRow(Base):
    """The worker's liveness: one row per worker slot (one per host today)."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    current_job_id: Mapped[str | None] = mapped_column(String(32))


class HostRow(Base):
    """Fleet mode: a device host, as its agent registered it and keeps it alive."""

    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    devices: Mapped[list[Any]] = mapped_column(JSON)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    agent_version: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    current_job_id: Mapped[str | None] = mapped_column(String(32))
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
