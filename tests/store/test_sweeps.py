"""Sweeps in the store: points queued and skipped as their jobs end, whichever process ends
them; concurrent advances queue a point once; cancel, delete, and what a sweep keeps in use."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.engine.sweep import expand
from app.errors import ConflictError
from app.store import Store
from app.store.tables import JobRow, ModelRow, SweepRow
from tests.store.conftest import job_params


def _sweep(
    store: Store,
    model_id: str,
    grid: dict[str, list[Any]],
    strategy: str = "grid",
    min_gain: float = 0.05,
    constraints: dict[str, float] | None = None,
) -> tuple[SweepRow, list[JobRow]]:
    points = [
        {
            "index": i,
            "values": values,
            "params": job_params(model_id, api="async", **values),
            "host": None,
        }
        for i, values in enumerate(expand(grid))
    ]
    params = {
        "grid": grid,
        "base": job_params(model_id),
        "strategy": strategy,
        "objective": "throughput_fps",
        "constraints": constraints or {},
        "min_gain": min_gain,
        "estimate": {"points": len(points), "repeats": 1, "measured_s": None, "note": ""},
    }
    return store.sweeps.create(params, points, model_id, None, max_queue=100)


def _result(fps: float, p99_ms: float = 1.0) -> dict[str, Any]:
    return {
        "status": "completed",
        "throughput_fps": fps,
        "iterations": 10,
        "duration_ms": 1000.0,
        "latency_ms": {"median": p99_ms / 2, "p90": p99_ms, "p95": p99_ms, "p99": p99_ms},
        "config": {"nireq": 1, "nstreams": 1, "batch_size": 1},
    }


def _run_next(store: Store, fps: float, p99_ms: float = 1.0) -> JobRow:
    """Claim the oldest queued job and finish it succeeded, as a worker would."""
    job = store.jobs.claim_next(worker_pid=1)
    assert job is not None
    assert store.jobs.finish_succeeded(job.id, _result(fps, p99_ms))
    return job


def _sweep_jobs(store: Store, sweep_id: str) -> list[JobRow]:
    rows = [store.jobs.get(job_id) for job_id in store.sweeps.children(sweep_id)]
    return sorted(rows, key=lambda r: (r.created_at, r.id))


def test_a_grid_queues_every_point_and_ends_when_they_have(
    store: Store, model_row: ModelRow
) -> None:
    sweep, jobs = _sweep(store, model_row.id, {"nireq": [1, 2], "nstreams": ["1", "2"]})
    assert sweep.status == "queued" and sweep.points_total == 4
    assert len(jobs) == 4 and {j.sweep_id for j in jobs} == {sweep.id}
    assert [store.jobs.get(j.id).params["nireq"] for j in jobs] == [1, 2, 1, 2]
    _run_next(store, 100.0)
    assert store.sweeps.get(sweep.id).status == "running"  # the job's end advanced it
    for fps in (110.0, 120.0, 130.0):
        _run_next(store, fps)
    done = store.sweeps.get(sweep.id)
    assert done.status == "succeeded" and done.finished_at is not None


def test_search_queues_the_next_nireq_only_when_the_one_before_ended(
    store: Store, model_row: ModelRow
) -> None:
    sweep, jobs = _sweep(store, model_row.id, {"nireq": [1, 2, 4]}, "search", min_gain=0.5)
    assert [j.params["nireq"] for j in jobs] == [1]
    _run_next(store, 100.0)
    assert [j.params["nireq"] for j in _sweep_jobs(store, sweep.id)] == [1, 2]
    _run_next(store, 110.0)  # +10%, under the 50% min gain: nireq 4 cannot win
    row = store.sweeps.get(sweep.id)
    assert row.status == "succeeded"
    assert len(_sweep_jobs(store, sweep.id)) == 2
    assert "stopped growing" in row.points[2]["skip_reason"]
    assert row.points[2]["job_id"] is None


def test_concurrent_advances_queue_a_point_once(store: Store, model_row: ModelRow) -> None:
    sweep, _ = _sweep(store, model_row.id, {"nireq": [1, 2, 4]}, "search")
    store.jobs.on_sweep_child_ended = None  # as if the process died before advancing
    _run_next(store, 100.0)
    assert len(_sweep_jobs(store, sweep.id)) == 1
    other = Store(store.data_dir, database_url=store.database_url)  # another process's view
    try:
        with ThreadPoolExecutor(8) as pool:
            queued = list(
                pool.map(lambda i: (store if i % 2 else other).sweeps.advance(sweep.id), range(16))
            )
    finally:
        other.close()
    assert sum(len(jobs) for jobs in queued) == 1
    jobs = _sweep_jobs(store, sweep.id)
    assert [j.params["nireq"] for j in jobs] == [1, 2]
    assert store.sweeps.get(sweep.id).points[1]["job_id"] == jobs[1].id


def test_cancel_cancels_the_queued_points_and_queues_no_more(
    store: Store, model_row: ModelRow
) -> None:
    sweep, jobs = _sweep(store, model_row.id, {"nireq": [1, 2], "batch": [1, 2]}, "search")
    running = store.jobs.claim_next(worker_pid=1)
    assert running is not None
    assert set(store.sweeps.request_cancel(sweep.id)) == {j.id for j in jobs}
    assert store.jobs.is_cancel_requested(running.id)  # the worker's watcher sees it
    assert {store.jobs.get(j.id).status for j in jobs if j.id != running.id} == {"cancelled"}
    store.sweeps.advance(sweep.id)
    assert store.sweeps.get(sweep.id).status == "running"  # one point still runs
    assert store.jobs.finish_cancelled(running.id, None, "Cancelled on request")
    row = store.sweeps.get(sweep.id)
    assert row.status == "cancelled" and row.finished_at is not None
    assert {j.status for j in _sweep_jobs(store, sweep.id)} == {"cancelled"}
    assert len(_sweep_jobs(store, sweep.id)) == len(jobs)  # nothing queued after the cancel
    with pytest.raises(ConflictError) as err:
        store.sweeps.request_cancel(sweep.id)
    assert err.value.code == "sweep_finished"


def test_a_point_failed_while_queued_advances_the_sweep(store: Store, model_row: ModelRow) -> None:
    sweep, jobs = _sweep(store, model_row.id, {"nireq": [1]})
    assert store.jobs.fail_queued(jobs[0].id, "host_unavailable", "gone")
    assert store.sweeps.get(sweep.id).status == "failed"


def test_delete_takes_the_points_jobs_and_only_when_finished(
    store: Store, model_row: ModelRow
) -> None:
    sweep, jobs = _sweep(store, model_row.id, {"nireq": [1, 2]})
    with pytest.raises(ConflictError) as err:
        store.sweeps.delete(sweep.id)
    assert err.value.code == "sweep_not_finished"
    _run_next(store, 1.0)
    _run_next(store, 2.0)
    with pytest.raises(ConflictError) as err:
        store.jobs.delete(jobs[0].id)
    assert err.value.code == "job_in_sweep"
    assert sorted(store.sweeps.delete(sweep.id)) == sorted(j.id for j in jobs)
    assert store.jobs.get_many([j.id for j in jobs]) == []
    assert store.sweeps.list_page()[1] == 0


def test_a_running_sweep_keeps_its_model_between_points(store: Store, model_row: ModelRow) -> None:
    sweep, _ = _sweep(store, model_row.id, {"nireq": [1, 2]}, "search")
    store.jobs.on_sweep_child_ended = None  # no job queued or running now, the sweep active
    _run_next(store, 100.0)
    with pytest.raises(ConflictError) as err:
        store.catalog.delete_model(model_row.id)
    assert err.value.code == "in_use" and err.value.details == {"sweep_ids": [sweep.id]}


def test_counts_by_status(store: Store, model_row: ModelRow) -> None:
    _sweep(store, model_row.id, {"nireq": [1]})
    finished, _ = _sweep(store, model_row.id, {"nireq": [1]})
    _run_next(store, 1.0)  # the oldest: the first sweep's point
    assert store.sweeps.count_by_status() == {"succeeded": 1, "queued": 1}
    assert store.sweeps.get(finished.id).status == "queued"
