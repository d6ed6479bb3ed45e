"""Deliveries: the webhook outbox (README: Webhooks).

A delivery row is written in the same transaction as the end of its job (`Jobs._finish`,
`Jobs.request_cancel`, `Jobs.fail_queued`) or sweep (`Sweeps.advance`), so no end is ever
without its delivery and no delivery without its end. Senders (one thread per API process,
any number of processes) claim due rows with a conditional UPDATE that moves
`next_attempt_at` forward by a lease and sets a fresh `claim_token`; they record the outcome
only while their token stands. No transaction is open during the HTTP call, and a sender
that dies mid-call leaves the row due again when its lease ends.

Deleting a job or sweep deletes its final deliveries (delivered or failed) in the same
transaction (`delete_final_deliveries`). A pending one stays: with its body stored it is still
sent (its receiver gets the final JSON), without one the sender records it failed (the subject
is gone); either way the retention pass (`Deliveries.remove_orphaned`) removes it once final.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, defer, sessionmaker

from app.store.tables import DeliveryRow, JobRow, SweepRow, new_id, utcnow

logger = logging.getLogger(__name__)

FINAL_DELIVERY_STATES = ("delivered", "failed")


def delivery_row(
    subject_kind: str, subject_id: str, status: str, url: str, now: datetime
) -> DeliveryRow:
    """A new pending delivery of `subject_kind`.`status` (the caller adds it to the session
    that ends the job or sweep); due at once."""
    return DeliveryRow(
        id=new_id(),
        subject_kind=subject_kind,
        subject_id=subject_id,
        event=f"{subject_kind}.{status}",
        url=url,
        state="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        claim_token=None,
        last_status_code=None,
        last_error=None,
        delivered_at=None,
        body=None,
    )


def delete_final_deliveries(s: Session, subject_kind: str, subject_ids: Sequence[str]) -> int:
    """In the session that deletes these jobs or sweeps: delete their final deliveries
    (delivered or failed), committed with the delete; pending ones are left to finish and to
    the retention pass. How many were deleted."""
    if not subject_ids:
        return 0
    done = s.execute(
        delete(DeliveryRow)
        .where(
            DeliveryRow.subject_kind == subject_kind,
            DeliveryRow.subject_id.in_(subject_ids),
            DeliveryRow.state.in_(FINAL_DELIVERY_STATES),
        )
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


class Deliveries:
    """The outbox: what is due, claims, outcomes, each job's or sweep's deliveries for its
    view, and the retention of those whose subject is gone."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions

    def get(self, delivery_id: str) -> DeliveryRow | None:
        with self.session() as s:
            return s.get(DeliveryRow, delivery_id)

    def for_subjects(self, subject_ids: Sequence[str]) -> dict[str, list[DeliveryRow]]:
        """{job or sweep id: its deliveries, oldest first} (bodies not loaded)."""
        if not subject_ids:
            return {}
        with self.session() as s:
            rows = s.scalars(
                select(DeliveryRow)
                .options(defer(DeliveryRow.body, raiseload=True))
                .where(DeliveryRow.subject_id.in_(subject_ids))
                .order_by(DeliveryRow.created_at, DeliveryRow.id)
            ).all()
        found: dict[str, list[DeliveryRow]] = {}
        for row in rows:
            found.setdefault(row.subject_id, []).append(row)
        return found

    def claim_due(self, lease_s: float, limit: int = 20) -> list[DeliveryRow]:
        """Claim up to `limit` pending deliveries that are due: each gets a new claim token,
        one more attempt, and `next_attempt_at` = now + `lease_s` (due again then if this
        claimer never reports). Safe across processes: a row goes to one claimer."""
        now = utcnow()
        with self.session() as s:
            due = s.execute(
                select(DeliveryRow.id, DeliveryRow.next_attempt_at)
                .where(DeliveryRow.state == "pending", DeliveryRow.next_attempt_at <= now)
                .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
                .limit(limit)
            ).all()
        claimed: list[str] = []
        for delivery_id, next_attempt_at in due:
            token = new_id()
            with self.session() as s:
                done = s.execute(
                    update(DeliveryRow)
                    .where(
                        DeliveryRow.id == delivery_id,
                        DeliveryRow.state == "pending",
                        DeliveryRow.next_attempt_at == next_attempt_at,
                    )
                    .values(
                        claim_token=token,
                        attempts=DeliveryRow.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=lease_s),
                    )
                )
                s.commit()
            if done.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(delivery_id)
        if not claimed:
            return []
        with self.session() as s:
            rows = s.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(claimed))).all()
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is due (None: none is pending); the sender sleeps
        until then unless a commit may have added one."""
        with self.session() as s:
            return s.scalar(
                select(func.min(DeliveryRow.next_attempt_at)).where(DeliveryRow.state == "pending")
            )

    def keep_body(self, delivery_id: str, body: bytes) -> bytes:
        """Store the body built for the first attempt unless one is stored already; the body
        every attempt sends (the stored one)."""
        with self.session() as s:
            s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.body.is_(None))
                .values(body=body)
            )
            s.commit()
            stored = s.scalar(select(DeliveryRow.body).where(DeliveryRow.id == delivery_id))
        return body if stored is None else bytes(stored)

    def record_delivered(self, delivery_id: str, token: str, status_code: int) -> bool:
        """The attempt under `token` succeeded; False when the claim was lost meanwhile."""
        now = utcnow()
        return self._record(
            delivery_id,
            token,
            state="delivered",
            last_status_code=status_code,
            last_error=None,
            delivered_at=now,
            next_attempt_at=now,
        )

    def record_failed_attempt(
        self,
        delivery_id: str,
        token: str,
        status_code: int | None,
        error: str,
        retry_at: datetime | None,
    ) -> bool:
        """The attempt under `token` failed: due again at `retry_at`, or given up (state
        `failed`) when None. False when the claim was lost meanwhile."""
        values: dict[str, object] = {"last_status_code": status_code, "last_error": error[:2000]}
        if retry_at is None:
            values.update(state="failed", next_attempt_at=utcnow())
        else:
            values.update(next_attempt_at=retry_at)
        return self._record(delivery_id, token, **values)

    def _record(self, delivery_id: str, token: str, **values: object) -> bool:
        with self.session() as s:
            done = s.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.id == delivery_id,
                    DeliveryRow.state == "pending",
                    DeliveryRow.claim_token == token,
                )
                .values(claim_token=None, **values)
            )
            s.commit()
        return done.rowcount == 1  # type: ignore[attr-defined]

    def remove_orphaned(self) -> int:
        """The retention pass: delete final deliveries (delivered or failed) whose job or sweep
        was deleted while they were pending; how many. A pending one stays until it is final."""
        job_gone = ~select(JobRow.id).where(JobRow.id == DeliveryRow.subject_id).exists()
        sweep_gone = ~select(SweepRow.id).where(SweepRow.id == DeliveryRow.subject_id).exists()
        with self.session() as s:
            done = s.execute(
                delete(DeliveryRow)
                .where(
                    DeliveryRow.state.in_(FINAL_DELIVERY_STATES),
                    or_(
                        and_(DeliveryRow.subject_kind == "job", job_gone),
                        and_(DeliveryRow.subject_kind == "sweep", sweep_gone),
                    ),
                )
                .execution_options(synchronize_session=False)
            )
            s.commit()
        removed = int(done.rowcount)  # type: ignore[attr-defined]
        if removed:
            logger.info(
                "retention removed %d final delivery(ies) of deleted jobs or sweeps", removed
            )
        return removed
