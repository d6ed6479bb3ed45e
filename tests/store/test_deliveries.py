"""The webhook outbox: a delivery row with every end of a job that has a callback_url (in the
same transaction), none without one, and claims that go to one sender at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.errors import ConflictError
from app.store import Store
from app.store.tables import DeliveryRow, ModelRow, utcnow
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
