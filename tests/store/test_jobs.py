"""Job state transitions: queue, claim, progress, finish, cancel, delete, recovery."""

from __future__ import annotations

import threading

import pytest

from app.engine.spec import DeviceInfo, Progress
from app.errors import ConflictError, NotFoundError, QueueFullError
from app.store import Store
from app.store.tables import DatasetRow, ModelRow
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
    assert store.jobs.count_by_status() == {"succeeded": 1}
    cumulative, count, _total = store.jobs.run_durations([0.0, 1000.0])
    assert count == 1 and cumulative[1] == 1
    [last] = store.jobs.last_results()
    assert (last.model_name, last.device, last.throughput_fps, last.latency_median_ms) == (
        "a",
        "CPU",
        123.5,
        1.5,
    )
