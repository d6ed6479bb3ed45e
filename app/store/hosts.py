"""Fleet mode's device hosts: what each agent registered, its heartbeat and drain flag, and the
reads over jobs that routing and the sweeper need (per-host queues and running jobs).

A job's state changes stay in jobs.py; this module only reads jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.errors import NotFoundError
from app.store.tables import HostRow, JobRow, utcnow

logger = logging.getLogger(__name__)


@dataclass
class HostLoad:
    """What a host has to do: its running job (if any) and the jobs queued for it, oldest first."""

    running: JobRow | None = None
    queued: list[JobRow] = field(default_factory=list)


class Hosts:
    """The `hosts` table, and per-host views of the jobs table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions

    # ------------------------------------------------------------------ hosts
    def register(
        self,
        name: str,
        labels: dict[str, str],
        devices: list[dict[str, Any]],
        facts: dict[str, Any],
        agent_version: str,
    ) -> HostRow:
        """Insert or refresh a host (an agent's start); its drain flag is kept."""
        now = utcnow()
        with self.session() as s:
            row = s.get(HostRow, name)
            if row is None:
                row = HostRow(name=name, draining=False, registered_at=now)
                s.add(row)
            row.labels, row.devices, row.facts = labels, devices, facts
            row.agent_version, row.registered_at = agent_version, now
            row.heartbeat_at, row.current_job_id = now, None
            s.commit()
        logger.info(
            "host %s registered (devices: %s)",
            name,
            ", ".join(str(d.get("name")) for d in devices) or "none",
        )
        return self.get(name)

    def heartbeat(self, name: str, current_job_id: str | None) -> HostRow | None:
        """Record that the host's agent is alive; None when the host is unknown."""
        with self.session() as s:
            done = s.execute(
                update(HostRow)
                .where(HostRow.name == name)
                .values(heartbeat_at=utcnow(), current_job_id=current_job_id)
            )
            s.commit()
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return self.get(name)

    def get(self, name: str) -> HostRow:
        with self.session() as s:
            row = s.get(HostRow, name)
        if row is None:
            raise NotFoundError(f"No host named {name!r}", code="host_not_found")
        return row

    def list_all(self) -> Sequence[HostRow]:
        with self.session() as s:
            return s.scalars(select(HostRow).order_by(HostRow.name)).all()

    def set_draining(self, name: str, draining: bool) -> None:
        with self.session() as s:
            done = s.execute(update(HostRow).where(HostRow.name == name).values(draining=draining))
            s.commit()
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFoundError(f"No host named {name!r}", code="host_not_found")
        logger.info("host %s %s", name, "draining" if draining else "taking work again")

    # -------------------------------------------------------- jobs, per host
    def loads(self) -> dict[str, HostLoad]:
        """Every host's running job and queued jobs (only hosts that have some)."""
        with self.session() as s:
            rows = s.scalars(
                select(JobRow)
                .where(JobRow.host.is_not(None), JobRow.status.in_(("queued", "running")))
                .order_by(JobRow.created_at, JobRow.id)
            ).all()
        loads: dict[str, HostLoad] = {}
        for row in rows:
            load = loads.setdefault(str(row.host), HostLoad())
            if row.status == "running":
                load.running = row
            else:
                load.queued.append(row)
        return loads

    def to_publish(
        self, created_before: datetime, dispatched_before: datetime, idle_hosts: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(job id, host) of queued jobs whose message may be missing, oldest first.

        Never handed to the broker (dispatched_at null) and older than `created_before` (the
        API that took it died before it published, or the broker was down); or handed over
        before `dispatched_before` while its host is idle (the message was lost on the way).
        """
        never = and_(JobRow.dispatched_at.is_(None), JobRow.created_at < created_before)
        lost = and_(JobRow.dispatched_at < dispatched_before, JobRow.host.in_(list(idle_hosts)))
        with self.session() as s:
            rows = s.execute(
                select(JobRow.id, JobRow.host)
                .where(JobRow.status == "queued", JobRow.host.is_not(None), or_(never, lost))
                .order_by(JobRow.created_at, JobRow.id)
            ).all()
        return [(job_id, str(host)) for job_id, host in rows]
