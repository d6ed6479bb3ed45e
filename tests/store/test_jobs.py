"""Job state transitions: queue, claim, progress, finish, cancel, delete, recovery."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import JSON, null, update
from sqlalchemy.exc import IntegrityError

from app.engine.spec import DeviceInfo, Progress
from app.errors import ConflictError, NotFoundError, QueueFullError, ValidationError
from app.store import Store
from app.store.tables import DatasetRow, JobRow, ModelRow, utcnow
from tests.store.conftest import job_params

RESULT = {
    "status": "completed",
    "throughput_fps": 123.5,
    "iterations": 10,
    "latency_ms": {"median": 1.5},
}


def test_claim_takes_the_oldest_queued_job_exactly_once(store: Store, model_row: ModelRow) -> None:
    first = store.jobs.create(job_params(model_row.id), max_queue=10)
    second = store.jobs.create(job_params(model_row.id), max_queue=10)
    claimed = store.jobs.claim_next(worker_pid=42)
    assert claimed is not None and claimed.id == first.id
    assert claimed.status == "running" and claimed.worker_pid == 42 and claimed.started_at
    assert store.jobs.queue_positions([store.jobs.get(second.id)]) == {second.id: 1}
    assert store.jobs.claim_next(worker_pid=42).id == second.id  # type: ignore[union-attr]
    assert store.jobs.claim_next(worker_pid=42) is None


def test_concurrent_claims_never_hand_out_a_job_twice(store: Store, model_row: ModelRow) -> None:
    ids = {store.jobs.create(job_params(model_row.id), max_queue=100).id for _ in range(20)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(pid: int) -> None:
        while (job := store.jobs.claim_next(pid)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(pid,)) for pid in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_success_stores_result_and_status_together(store: Store, model_row: ModelRow) -> None:
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.claim_next(1)
    store.jobs.update_progress(job.id, Progress(fraction=0.5, iterations=5, elapsed_s=0.25))
    assert store.jobs.get(job.id).progress_iterations == 5
    assert store.jobs.finish_succeeded(job.id, RESULT)
    done = store.jobs.get(job.id)
    assert (done.status, done.result, done.throughput_fps) == ("succeeded", RESULT, 123.5)
    assert done.progress_fraction == 1.0 and done.finished_at and done.run_duration_s is not None
    # a finished job cannot be finished again
    assert not store.jobs.finish_failed(job.id, "x", "y")
    assert store.jobs.get(job.id).status == "succeeded"


def test_a_heartbeat_with_progress_writes_both_in_one_commit(
    store: Store, model_row: ModelRow
) -> None:
    """The worker's tick: heartbeat and progress in one commit (every commit wakes whoever
    watches the store); once the job has ended, its progress stays as it was."""
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.workers.record_start(4242)
    store.jobs.claim_next(4242)
    before = store.workers.read()
    assert before is not None
    token = store.change_token()
    store.workers.heartbeat(4242, job.id, Progress(fraction=0.25, iterations=7, elapsed_s=0.5))
    if token is not None:  # SQLite: the commit is seen by the store's own reader
        assert store.change_token() != token
    after = store.workers.read()
    assert after is not None and after.heartbeat_at > before.heartbeat_at
    assert after.current_job_id == job.id
    assert store.jobs.get(job.id).progress_iterations == 7
    assert store.jobs.finish_failed(job.id, "x", "y")
    store.workers.heartbeat(4242, None, Progress(fraction=0.5, iterations=9, elapsed_s=1.0))
    store.workers.heartbeat(4242, job.id, Progress(fraction=0.5, iterations=9, elapsed_s=1.0))
    assert store.jobs.get(job.id).progress_iterations == 7


def test_cancel_a_queued_job_is_immediate(store: Store, model_row: ModelRow) -> None:
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    cancelled = store.jobs.request_cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert store.jobs.claim_next(1) is None
    with pytest.raises(ConflictError):
        store.jobs.request_cancel(job.id)


def test_cancel_a_running_job_sets_the_flag_for_the_worker(
    store: Store, model_row: ModelRow
) -> None:
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.claim_next(1)
    assert not store.jobs.is_cancel_requested(job.id)
    assert store.jobs.request_cancel(job.id).status == "running"
    assert store.jobs.is_cancel_requested(job.id)
    assert store.jobs.finish_cancelled(job.id, None, "Cancelled on request")
    assert store.jobs.get(job.id).error_code == "cancelled"


def test_full_queue_refuses_new_jobs(store: Store, model_row: ModelRow) -> None:
    store.jobs.create(job_params(model_row.id), max_queue=2)
    store.jobs.create(job_params(model_row.id), max_queue=2)
    with pytest.raises(QueueFullError) as info:
        store.jobs.create(job_params(model_row.id), max_queue=2)
    assert info.value.status_code == 503


def test_unknown_model_or_dataset_is_not_found(store: Store, model_row: ModelRow) -> None:
    with pytest.raises(NotFoundError):
        store.jobs.create(job_params("nope"), max_queue=2)
    with pytest.raises(NotFoundError):
        store.jobs.create(job_params(model_row.id, dataset_id="nope"), max_queue=2)


def test_only_finished_jobs_can_be_deleted(store: Store, model_row: ModelRow) -> None:
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    with pytest.raises(ConflictError):
        store.jobs.delete(job.id)
    store.jobs.request_cancel(job.id)
    store.jobs.delete(job.id)
    with pytest.raises(NotFoundError):
        store.jobs.get(job.id)


def test_running_jobs_of_a_dead_process_become_failed(store: Store, model_row: ModelRow) -> None:
    mine = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.claim_next(7)
    assert store.jobs.fail_running("worker_lost", "gone", worker_pid=8) == []
    assert store.jobs.fail_running("worker_lost", "gone", worker_pid=7) == [mine.id]
    lost = store.jobs.get(mine.id)
    assert (lost.status, lost.error_code, lost.error_message) == ("failed", "worker_lost", "gone")
    assert store.jobs.queue_depth() == 1


def test_list_job_heads_filters_and_orders_newest_first(store: Store, model_row: ModelRow) -> None:
    ids = [store.jobs.create(job_params(model_row.id), max_queue=10).id for _ in range(3)]
    store.jobs.request_cancel(ids[0])
    heads, total = store.jobs.list_heads()
    assert heads == [(ids[2], "queued"), (ids[1], "queued"), (ids[0], "cancelled")] and total == 3
    heads, total = store.jobs.list_heads(status="queued", limit=1)
    assert heads == [(ids[2], "queued")] and total == 2
    heads, _ = store.jobs.list_heads(status="queued", limit=1, offset=1)
    assert heads == [(ids[1], "queued")]
    assert store.jobs.list_heads(model_id="other")[1] == 0
    assert store.jobs.head(ids[0]) == (ids[0], "cancelled")
    assert {r.id for r in store.jobs.get_many([ids[0], ids[2]])} == {ids[0], ids[2]}
    assert store.jobs.get_many([]) == []


def test_a_model_in_use_cannot_be_deleted_then_its_files_go(
    store: Store, model_row: ModelRow, dataset_row: DatasetRow
) -> None:
    job = store.jobs.create(job_params(model_row.id, dataset_id=dataset_row.id), max_queue=10)
    with pytest.raises(ConflictError) as info:
        store.catalog.delete_model(model_row.id)
    assert info.value.details == {"job_ids": [job.id]}
    with pytest.raises(ConflictError):
        store.catalog.delete_dataset(dataset_row.id)
    model_dir = store.catalog.model_dir(model_row)
    assert (model_dir / "model.xml").exists()
    store.jobs.request_cancel(job.id)
    store.catalog.delete_model(model_row.id)
    assert not model_dir.exists()
    for f in model_row.files:
        assert not store.blobs.path_for(f["sha256"]).exists()
    store.catalog.delete_dataset(dataset_row.id)
    assert list(store.blobs.blobs_dir.rglob("*.*")) == []


def test_devices_worker_heartbeat_and_metrics_queries(store: Store, model_row: ModelRow) -> None:
    store.workers.replace_devices(
        [DeviceInfo(name="CPU", full_name="Some CPU", properties={"A": "1"})]
    )
    assert [(d.name, d.properties) for d in store.workers.list_devices()] == [("CPU", {"A": "1"})]
    store.workers.record_start(99)
    before = store.workers.read().heartbeat_at  # type: ignore[union-attr]
    store.workers.heartbeat(99, "job")
    after = store.workers.read()
    assert after is not None and after.heartbeat_at >= before and after.current_job_id == "job"
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.claim_next(99)
    store.jobs.finish_succeeded(job.id, RESULT)
    assert store.job_stats.count_by_status() == {"succeeded": 1}
    [ended] = store.job_stats.ended_since(None)
    assert (ended.id, ended.status) == (job.id, "succeeded") and ended.run_duration_s is not None
    [last] = store.job_stats.last_results()
    assert (last.model_name, last.device, last.throughput_fps, last.latency_median_ms) == (
        "a",
        "CPU",
        123.5,
        1.5,
    )


def test_claims_from_several_stores_at_once_never_hand_out_a_job_twice(
    store: Store, model_row: ModelRow
) -> None:
    """Separate Store objects (own engines and connections, like worker processes) claim
    together; each job goes to exactly one of them, and its row names that claimer."""
    ids = {store.jobs.create(job_params(model_row.id), max_queue=100).id for _ in range(40)}
    claimers = [Store(store.data_dir, database_url=store.database_url) for _ in range(4)]
    start = threading.Barrier(len(claimers))
    claimed: dict[int, list[str]] = {pid: [] for pid in range(1, len(claimers) + 1)}

    def claim_all(pid: int, claimer: Store) -> None:
        claimer.jobs.queue_depth()  # connected before the start: the race is on the claims
        start.wait()
        while (job := claimer.jobs.claim_next(pid)) is not None:
            claimed[pid].append(job.id)

    threads = [
        threading.Thread(target=claim_all, args=(pid, claimer))
        for pid, claimer in zip(claimed, claimers, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for claimer in claimers:
        claimer.close()
    every_claim = [job_id for ids_of_one in claimed.values() for job_id in ids_of_one]
    assert len(every_claim) == len(ids) and set(every_claim) == ids  # once each, none lost
    for pid, job_ids in claimed.items():
        assert {row.worker_pid for row in store.jobs.get_many(job_ids)} <= {pid}


def test_one_idempotency_key_makes_one_job_from_several_stores_at_once(
    store: Store, model_row: ModelRow
) -> None:
    params = job_params(model_row.id)
    submitters = [Store(store.data_dir, database_url=store.database_url) for _ in range(4)]
    start = threading.Barrier(len(submitters))

    def submit(submitter: Store) -> tuple[str, bool]:
        submitter.jobs.queue_depth()  # connected before the start: the race is on the key
        start.wait()
        row, created = submitter.jobs.submit(params, 100, "key-1", "hash-1")
        return row.id, created

    with ThreadPoolExecutor(len(submitters)) as pool:
        results = list(pool.map(submit, submitters))
    for submitter in submitters:
        submitter.close()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert store.jobs.queue_depth() == 1
    with pytest.raises(ValidationError) as error:
        store.jobs.submit(params, 100, "key-1", "another-request")
    assert error.value.code == "idempotency_key_reused"


@pytest.mark.parametrize("result", [None, "json-null"])
def test_the_database_refuses_succeeded_without_a_result(
    store: Store, model_row: ModelRow, result: str | None
) -> None:
    """The CHECK constraint of migration 0002, whatever code writes the row: a SQL NULL and a
    JSON null are both "no result"."""
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.claim_next(1)
    value = null() if result is None else JSON.NULL  # SQL NULL, or the JSON value null
    with pytest.raises(IntegrityError), store.session() as s:
        s.execute(
            update(JobRow).where(JobRow.id == job.id).values(status="succeeded", result=value)
        )
        s.commit()
    assert store.jobs.get(job.id).status == "running"
    assert store.jobs.finish_succeeded(job.id, RESULT)  # with a result it goes through


def test_json_columns_keep_values_and_key_order(store: Store, model_row: ModelRow) -> None:
    result = {
        "status": "completed",
        "throughput_fps": 0.1 + 0.2,  # not exactly representable: must come back bit-equal
        "zeta": {"b": [1, 2.5, None, True], "a": "ünïcödé ✓"},
        "alpha": [],
        "iterations": 2**40,
        "latency_ms": {"median": 1e-9},
    }
    job = store.jobs.create(job_params(model_row.id, shape="[1,3,224,224]"), max_queue=10)
    store.jobs.claim_next(1)
    assert store.jobs.finish_succeeded(job.id, result)
    done = store.jobs.get(job.id)
    assert done.result == result
    assert list(done.result) == list(result) and list(done.result["zeta"]) == ["b", "a"]
    assert done.params == job_params(model_row.id, shape="[1,3,224,224]")
    assert done.progress_iterations == 2**40  # 64-bit, also on PostgreSQL


def test_timestamps_come_back_as_aware_utc(store: Store, model_row: ModelRow) -> None:
    before = datetime.now(UTC)
    job = store.jobs.create(job_params(model_row.id), max_queue=10)
    store.jobs.claim_next(1)
    store.jobs.finish_failed(job.id, "x", "y")
    after = datetime.now(UTC)
    done = store.jobs.get(job.id)
    for stamp in (done.created_at, done.started_at, done.finished_at):
        assert stamp is not None and stamp.utcoffset() == timedelta(0)
        assert before <= stamp <= after


def test_ties_in_created_at_are_broken_by_id_in_every_query(
    store: Store, model_row: ModelRow
) -> None:
    """Jobs created in the same microsecond: claim order, queue positions (one job and many)
    and the newest-first listing agree on one order (by id), on every database."""
    ids = [store.jobs.create(job_params(model_row.id), max_queue=10).id for _ in range(6)]
    same = utcnow()
    with store.session() as s:
        s.execute(update(JobRow).values(created_at=same))
        s.commit()
    by_id = sorted(ids)
    rows = store.jobs.get_many(ids)
    assert store.jobs.queue_positions(rows) == {job_id: i + 1 for i, job_id in enumerate(by_id)}
    for i, job_id in enumerate(by_id):
        assert store.jobs.queue_positions([store.jobs.get(job_id)]) == {job_id: i + 1}
    heads, _ = store.jobs.list_heads()
    assert [job_id for job_id, _ in heads] == by_id[::-1]
    claimed = [store.jobs.claim_next(1) for _ in ids]
    assert [job.id for job in claimed if job is not None] == by_id


def test_ids_and_texts_with_a_nul_character(
    store: Store, model_row: ModelRow, dataset_row: DatasetRow
) -> None:
    """An id with NUL in it matches nothing (404, not a failed statement: PostgreSQL's text
    cannot hold NUL); JSON keeps it; a message with one is stored, not lost."""
    nul_id = "a\x00b"
    lookups = [
        store.jobs.get,
        store.jobs.head,
        store.jobs.request_cancel,
        store.jobs.delete,
        store.catalog.get_model,
        store.catalog.delete_model,
        store.catalog.get_dataset,
        store.catalog.delete_dataset,
    ]
    for lookup in lookups:
        with pytest.raises(NotFoundError):
            lookup(nul_id)
    with pytest.raises(NotFoundError):
        store.jobs.create(job_params(nul_id), max_queue=10)
    with pytest.raises(NotFoundError):
        store.jobs.create(job_params(model_row.id, dataset_id=nul_id), max_queue=10)
    assert store.jobs.list_heads(model_id=nul_id) == ([], 0)
    job = store.jobs.create(job_params(model_row.id, note="x\x00y"), max_queue=10)
    assert store.jobs.get(job.id).params["note"] == "x\x00y"
    store.jobs.claim_next(1)
    assert store.jobs.finish_failed(job.id, "engine_error", "bad byte \x00 in the model")
    failed = store.jobs.get(job.id)
    assert failed.status == "failed" and failed.error_message is not None
    assert failed.error_message.replace("\ufffd", "\x00") == "bad byte \x00 in the model"
