"""The webhook outbox: a delivery row with every end of a job that has a callback_url (in the
same transaction), none without one, and claims that go to one sender at a time; deleting a
job or sweep deletes its final deliveries, and the retention pass those left pending then."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.errors import ConflictError
from app.store import Store
from app.store.tables import DeliveryRow, ModelRow, SweepRow, utcnow
from tests.store.conftest import job_params

URL = "http://127.0.0.1:9/hook"
RESULT = {"status": "completed", "throughput_fps": 10.0, "iterations": 3, "latency_ms": {}}


def _running(store: Store, model_id: str, **extra: object) -> str:
    job = store.jobs.create(job_params(model_id, **extra), max_queue=10)
    claimed = store.jobs.claim_next(worker_pid=7)
    assert claimed is not None and claimed.id == job.id
    return job.id


ENDS: dict[str, tuple[str, Callable[[Store, str], object], bool]] = {
    "succeeded": ("job.succeeded", lambda s, j: s.jobs.finish_succeeded(j, RESULT), True),
    "failed": ("job.failed", lambda s, j: s.jobs.finish_failed(j, "boom", "it broke"), True),
    "cancelled running": (
        "job.cancelled",
        lambda s, j: s.jobs.finish_cancelled(j, None, "stopped"),
        True,
    ),
    "interrupted at start-up": (
        "job.failed",
        lambda s, j: s.jobs.fail_running("interrupted", "died"),
        True,
    ),
    "cancelled queued": ("job.cancelled", lambda s, j: s.jobs.request_cancel(j), False),
    "failed queued": (
        "job.failed",
        lambda s, j: s.jobs.fail_queued(j, "host_unavailable", "gone"),
        False,
    ),
}


@pytest.mark.parametrize("end", list(ENDS))
def test_every_end_of_a_job_with_a_callback_writes_one_delivery(
    store: Store, model_row: ModelRow, end: str
) -> None:
    event, finish, running = ENDS[end]
    if running:
        job_id = _running(store, model_row.id, callback_url=URL)
    else:
        job_id = store.jobs.create(job_params(model_row.id, callback_url=URL), 10).id
    assert store.deliveries.for_subjects([job_id]) == {}  # nothing before the end
    finish(store, job_id)
    job = store.jobs.get(job_id)
    rows = store.deliveries.for_subjects([job_id])[job_id]
    assert [(r.event, r.url, r.state, r.attempts) for r in rows] == [(event, URL, "pending", 0)]
    # written with the end, in its transaction: the same timestamp as the job's end
    assert rows[0].created_at == job.finished_at == rows[0].next_attempt_at
    with contextlib.suppress(ConflictError):  # a second end is refused: no second delivery
        finish(store, job_id)
    assert len(store.deliveries.for_subjects([job_id])[job_id]) == 1


def test_no_delivery_for_a_job_without_callback(store: Store, model_row: ModelRow) -> None:
    done = _running(store, model_row.id)
    store.jobs.finish_succeeded(done, RESULT)
    queued = store.jobs.create(job_params(model_row.id), 10).id
    store.jobs.request_cancel(queued)
    assert store.deliveries.for_subjects([done, queued]) == {}
    assert store.deliveries.claim_due(lease_s=30) == []


def test_a_due_delivery_goes_to_one_claimer_and_comes_back_when_its_lease_ends(
    store: Store, model_row: ModelRow
) -> None:
    job_id = _running(store, model_row.id, callback_url=URL)
    store.jobs.finish_failed(job_id, "boom", "it broke")
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda _: store.deliveries.claim_due(lease_s=30), range(4)))
    won = [rows for rows in claims if rows]
    assert len(won) == 1 and len(won[0]) == 1
    first = won[0][0]
    assert first.attempts == 1 and first.claim_token
    assert store.deliveries.claim_due(lease_s=30) == []  # leased: not due
    # the claimer died: its lease ends, another claims it (a new token, attempt 2)
    with store.session() as s:
        s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == first.id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    (again,) = store.deliveries.claim_due(lease_s=30)
    assert again.id == first.id and again.attempts == 2 and again.claim_token != first.claim_token
    # the dead claimer's late report is refused; the live one's counts
    assert not store.deliveries.record_delivered(first.id, first.claim_token or "", 200)
    assert store.deliveries.record_delivered(again.id, again.claim_token or "", 204)
    row = store.deliveries.get(first.id)
    assert row is not None and row.state == "delivered" and row.last_status_code == 204


def test_a_failed_attempt_is_due_again_at_its_retry_time_or_given_up(
    store: Store, model_row: ModelRow
) -> None:
    job_id = _running(store, model_row.id, callback_url=URL)
    store.jobs.finish_succeeded(job_id, RESULT)
    (row,) = store.deliveries.claim_due(lease_s=30)
    retry_at = utcnow() + timedelta(hours=1)
    assert store.deliveries.record_failed_attempt(
        row.id, row.claim_token or "", 500, "HTTP 500", retry_at
    )
    assert store.deliveries.claim_due(lease_s=30) == []
    (view,) = store.deliveries.for_subjects([job_id])[job_id]
    assert (view.state, view.last_status_code, view.next_attempt_at) == ("pending", 500, retry_at)
    with store.session() as s:
        s.execute(update(DeliveryRow).values(next_attempt_at=utcnow()))
        s.commit()
    (row,) = store.deliveries.claim_due(lease_s=30)
    assert store.deliveries.record_failed_attempt(
        row.id, row.claim_token or "", None, "refused", None
    )
    (view,) = store.deliveries.for_subjects([job_id])[job_id]
    assert (view.state, view.attempts, view.last_error) == ("failed", 2, "refused")
    assert store.deliveries.claim_due(lease_s=30) == []


def test_the_first_stored_body_is_the_one_every_attempt_sends(
    store: Store, model_row: ModelRow
) -> None:
    job_id = _running(store, model_row.id, callback_url=URL)
    store.jobs.finish_succeeded(job_id, RESULT)
    (row,) = store.deliveries.claim_due(lease_s=30)
    assert store.deliveries.keep_body(row.id, b'{"a":1}') == b'{"a":1}'
    assert store.deliveries.keep_body(row.id, b'{"a":2}') == b'{"a":1}'


# ---------------------------------------------------------------- deletes and retention
def _ended(store: Store, model_id: str) -> tuple[str, str]:
    """A job with a callback that succeeded: (job id, its pending delivery's id)."""
    job_id = _running(store, model_id, callback_url=URL)
    assert store.jobs.finish_succeeded(job_id, RESULT)
    (row,) = store.deliveries.for_subjects([job_id])[job_id]
    return job_id, row.id


def _claim(store: Store, delivery_id: str) -> str:
    """Claim the due delivery `delivery_id` as a sender would (with any other due one); its
    claim token."""
    claimed = {row.id: row for row in store.deliveries.claim_due(lease_s=30, limit=100)}
    token = claimed[delivery_id].claim_token
    assert token
    return token


def _deliver(store: Store, delivery_id: str) -> None:
    assert store.deliveries.record_delivered(delivery_id, _claim(store, delivery_id), 200)


def _give_up(store: Store, delivery_id: str) -> None:
    token = _claim(store, delivery_id)
    assert store.deliveries.record_failed_attempt(delivery_id, token, 500, "HTTP 500", None)


def _state(store: Store, delivery_id: str) -> str | None:
    row = store.deliveries.get(delivery_id)
    return None if row is None else row.state


def _cancelled_sweep(store: Store, model_id: str) -> tuple[str, list[str], str]:
    """A sweep with a callback, cancelled before any point ran: (sweep id, its jobs' ids, its
    pending delivery's id)."""
    points = [
        {"index": i, "values": {"nireq": n}, "params": job_params(model_id, nireq=n), "host": None}
        for i, n in enumerate((1, 2))
    ]
    params = {
        "grid": {"nireq": [1, 2]},
        "base": job_params(model_id),
        "strategy": "grid",
        "objective": "throughput_fps",
        "constraints": {},
        "min_gain": 0.05,
        "estimate": {"points": 2, "repeats": 1, "measured_s": None, "note": ""},
        "callback_url": URL,
    }
    sweep, jobs = store.sweeps.create(params, points, model_id, None, max_queue=100)
    store.sweeps.request_cancel(sweep.id)
    store.sweeps.advance(sweep.id)
    assert store.sweeps.get(sweep.id).status == "cancelled"
    (row,) = store.deliveries.for_subjects([sweep.id])[sweep.id]
    assert (row.event, row.state) == ("sweep.cancelled", "pending")
    return sweep.id, [j.id for j in jobs], row.id


def test_deleting_a_job_deletes_its_final_deliveries_and_leaves_a_pending_one_to_finish(
    store: Store, model_row: ModelRow
) -> None:
    delivered_job, delivered = _ended(store, model_row.id)
    _deliver(store, delivered)
    failed_job, failed = _ended(store, model_row.id)
    _give_up(store, failed)
    _, kept = _ended(store, model_row.id)  # its job is not deleted: its delivery stays
    _deliver(store, kept)
    pending_job, pending = _ended(store, model_row.id)
    token = _claim(store, pending)  # a sender is mid-call
    assert store.deliveries.keep_body(pending, b'{"id":"x"}') == b'{"id":"x"}'

    for job_id in (delivered_job, failed_job, pending_job):
        store.jobs.delete(job_id)
    assert store.jobs.get_many([delivered_job, failed_job, pending_job]) == []
    assert (_state(store, delivered), _state(store, failed)) == (None, None)
    assert _state(store, kept) == "delivered"
    row = store.deliveries.get(pending)
    assert row is not None and row.state == "pending" and row.body == b'{"id":"x"}'
    assert store.deliveries.remove_orphaned() == 0  # pending: it keeps going

    # the sender's outcome still counts; once final, the retention pass removes it
    assert store.deliveries.record_delivered(pending, token, 200)
    assert _state(store, pending) == "delivered"
    assert store.deliveries.remove_orphaned() == 1
    assert _state(store, pending) is None
    assert _state(store, kept) == "delivered"  # its job exists
    assert store.deliveries.remove_orphaned() == 0


def test_a_refused_job_delete_deletes_no_delivery(store: Store, model_row: ModelRow) -> None:
    job_id, delivery = _ended(store, model_row.id)
    _deliver(store, delivery)
    sweep_id, sweep_jobs, _ = _cancelled_sweep(store, model_row.id)
    with pytest.raises(ConflictError):
        store.jobs.delete(sweep_jobs[0])  # a point of a sweep: 409, nothing deleted
    assert _state(store, delivery) == "delivered"
    assert store.sweeps.get(sweep_id).status == "cancelled"
    assert store.jobs.get(job_id).status == "succeeded"


def test_deleting_a_sweep_deletes_its_final_deliveries_and_leaves_a_pending_one_to_finish(
    store: Store, model_row: ModelRow
) -> None:
    delivered_sweep, _, delivered = _cancelled_sweep(store, model_row.id)
    _deliver(store, delivered)
    kept_sweep, _, kept = _cancelled_sweep(store, model_row.id)  # not deleted
    _give_up(store, kept)
    pending_sweep, _, pending = _cancelled_sweep(store, model_row.id)

    store.sweeps.delete(delivered_sweep)
    store.sweeps.delete(pending_sweep)
    with store.session() as s:
        assert s.get(SweepRow, delivered_sweep) is None and s.get(SweepRow, pending_sweep) is None
    assert _state(store, delivered) is None
    assert _state(store, pending) == "pending"
    assert store.deliveries.remove_orphaned() == 0

    # the sender found its sweep gone before it built the body: given up, then removed
    _give_up(store, pending)
    assert store.deliveries.remove_orphaned() == 1
    assert _state(store, pending) is None
    assert _state(store, kept) == "failed"  # its sweep exists
    assert list(store.deliveries.for_subjects([kept_sweep])) == [kept_sweep]
