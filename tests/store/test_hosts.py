"""Fleet mode in the store, on SQLite and PostgreSQL: hosts, routed jobs, claims by token, one
running job per host (the database refuses a second), and what the sweeper reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.errors import NotFoundError
from app.store import Store
from app.store.tables import JobRow, ModelRow, utcnow
from tests.store.conftest import job_params

CPU = {"name": "CPU", "full_name": "a CPU", "properties": {}}


def _routed(store: Store, model_row: ModelRow, host: str) -> JobRow:
    row, _ = store.jobs.submit(job_params(model_row.id), max_queue=10, host=host)
    return row


def test_register_keeps_the_drain_flag_and_heartbeat_knows_unknown_hosts(store: Store) -> None:
    store.hosts.register("lab-a", {"sku": "x"}, [CPU], {"cpu": "c"}, "1.0")
    store.hosts.set_draining("lab-a", True)
    again = store.hosts.register("lab-a", {"sku": "y"}, [CPU], {}, "1.1")
    assert again.draining and again.labels == {"sku": "y"} and again.agent_version == "1.1"
    beat = store.hosts.heartbeat("lab-a", "job-1")
    assert beat is not None and beat.current_job_id == "job-1"
    assert store.hosts.heartbeat("nobody", None) is None
    with pytest.raises(NotFoundError):
        store.hosts.set_draining("nobody", True)


def test_a_claim_takes_only_a_job_queued_for_that_host_and_a_retry_gets_it_again(
    store: Store, model_row: ModelRow
) -> None:
    job = _routed(store, model_row, "lab-a")
    assert store.jobs.claim(job.id, "lab-b", "token-b1") is None  # routed elsewhere
    claimed = store.jobs.claim(job.id, "lab-a", "token-a1")
    assert claimed is not None and claimed.status == "running" and claimed.host == "lab-a"
    retried = store.jobs.claim(job.id, "lab-a", "token-a1")  # the answer was lost: same claim
    assert retried is not None and retried.started_at == claimed.started_at
    assert store.jobs.claim(job.id, "lab-a", "token-a2") is None  # a second delivery
    assert store.jobs.finish_succeeded(job.id, {"iterations": 1}, host="lab-b") is False
    assert store.jobs.finish_succeeded(job.id, {"iterations": 1}, host="lab-a") is True
    assert store.jobs.claim(job.id, "lab-a", "token-a1") is None  # finished: nothing to run


def test_the_database_refuses_a_second_running_job_on_one_host(
    store: Store, model_row: ModelRow
) -> None:
    first = _routed(store, model_row, "lab-a")
    second = _routed(store, model_row, "lab-a")
    other = _routed(store, model_row, "lab-b")
    assert store.jobs.claim(first.id, "lab-a", "t1") is not None
    with pytest.raises(IntegrityError):
        store.jobs.claim(second.id, "lab-a", "t2")
    with store.session() as s, pytest.raises(IntegrityError):  # whatever code writes it
        s.execute(update(JobRow).where(JobRow.id == second.id).values(status="running"))
        s.commit()
    assert store.jobs.claim(other.id, "lab-b", "t3") is not None  # another host: fine
    local = [store.jobs.create(job_params(model_row.id), 10) for _ in range(2)]  # no host
    assert store.jobs.claim_next(1) is not None and store.jobs.claim_next(1) is not None
    assert {store.jobs.get(j.id).status for j in local} == {"running"}


def test_queue_positions_count_per_host(store: Store, model_row: ModelRow) -> None:
    a1, b1, a2 = (_routed(store, model_row, h) for h in ("lab-a", "lab-b", "lab-a"))
    rows = [store.jobs.get(j.id) for j in (a1, b1, a2)]
    assert store.jobs.queue_positions(rows) == {a1.id: 1, b1.id: 1, a2.id: 2}
    assert store.jobs.queue_positions([rows[2]]) == {a2.id: 2}


def test_loads_and_what_the_sweeper_publishes_again(store: Store, model_row: ModelRow) -> None:
    running, queued, fresh = (_routed(store, model_row, "lab-a") for _ in range(3))
    idle = _routed(store, model_row, "lab-b")
    store.jobs.claim(running.id, "lab-a", "t")
    loads = store.hosts.loads()
    assert loads["lab-a"].running is not None and loads["lab-a"].running.id == running.id
    assert [j.id for j in loads["lab-a"].queued] == [queued.id, fresh.id]
    now = utcnow()
    with store.session() as s:  # `queued` and `idle` are old; `fresh` was never published
        s.execute(
            update(JobRow)
            .where(JobRow.id.in_([queued.id, idle.id]))
            .values(created_at=now - timedelta(seconds=60))
        )
        s.commit()
    store.jobs.mark_dispatched([idle.id])
    with store.session() as s:
        s.execute(
            update(JobRow)
            .where(JobRow.id == idle.id)
            .values(dispatched_at=now - timedelta(seconds=30))
        )
        s.commit()
    later = now + timedelta(seconds=1)
    # Never published and older than the grace: `queued`. Published long ago on an idle host:
    # `idle`. Not `fresh` (within the grace) nor `running`.
    picked = store.hosts.to_publish(
        later - timedelta(seconds=10), later - timedelta(seconds=15), ["lab-b"]
    )
    assert sorted(picked) == sorted([(queued.id, "lab-a"), (idle.id, "lab-b")])
    assert store.hosts.to_publish(
        later - timedelta(seconds=10), later - timedelta(seconds=15), []
    ) == [(queued.id, "lab-a")]
    assert store.jobs.fail_queued(queued.id, "host_unavailable", "gone") is True
    assert store.jobs.fail_queued(queued.id, "host_unavailable", "gone") is False
    assert store.jobs.get(queued.id).error_code == "host_unavailable"
