"""The local worker's slot (pid, heartbeat, current job) and the devices its OpenVINO sees."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.engine.spec import DeviceInfo, Progress
from app.store.jobs import progress_update
from app.store.tables import DeviceRow, WorkerRow, utcnow

WORKER_SLOT = 1


class Workers:
    """One worker slot and the device list it reported."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions

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

    def record_start(self, pid: int) -> None:
        now = utcnow()
        with self.session() as s:
            row = s.get(WorkerRow, WORKER_SLOT)
            if row is None:
                s.add(WorkerRow(id=WORKER_SLOT, pid=pid, started_at=now, heartbeat_at=now))
            else:
                row.pid, row.started_at, row.heartbeat_at, row.current_job_id = pid, now, now, None
            s.commit()

    def heartbeat(
        self, pid: int, current_job_id: str | None, progress: Progress | None = None
    ) -> None:
        """The worker is alive (and runs `current_job_id`); with `progress`, the job's
        progress in the same commit (one commit a tick, not two: every commit wakes whoever
        watches the store)."""
        with self.session() as s:
            s.execute(
                update(WorkerRow)
                .where(WorkerRow.id == WORKER_SLOT, WorkerRow.pid == pid)
                .values(heartbeat_at=utcnow(), current_job_id=current_job_id)
            )
            if progress is not None and current_job_id is not None:
                s.execute(progress_update(current_job_id, progress))
            s.commit()

    def read(self) -> WorkerRow | None:
        with self.session() as s:
            return s.get(WorkerRow, WORKER_SLOT)

    def clear(self, pid: int | None = None) -> None:
        """Forget the worker slot (of that pid, or whichever worker it names)."""
        conditions = [WorkerRow.id == WORKER_SLOT]
        if pid is not None:
            conditions.append(WorkerRow.pid == pid)
        with self.session() as s:
            s.execute(delete(WorkerRow).where(*conditions))
            s.commit()
