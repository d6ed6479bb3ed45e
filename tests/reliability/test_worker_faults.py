"""Guarantees 2, 4, 5 and 6: results, a killed worker, cancel and the wall-time budget.

Faults are real: `OVBENCH_FAULT` arms a fault point in the worker (app/faults.py) that
SIGKILLs it or hangs it, and `kill -9` is sent to the real worker process.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from app.settings import Settings
from app.store import Store
from app.worker.supervisor import wall_time_budget_s
from tests.e2e.conftest import Server, pid_alive, wait_for
from tests.reliability.conftest import worker_changed


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def test_a_crash_just_before_the_result_never_leaves_succeeded_without_it(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server(env={"OVBENCH_FAULT": "before_result"})
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    old_pid = server.worker_pid()
    job_id = server.submit(model_id=model_id, niter=5)["id"]
    seen: list[str] = []

    def finished() -> dict[str, object] | None:
        job = server.job(job_id)
        seen.append(job["status"])
        assert not (job["status"] == "succeeded" and not job["result"]), job
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, 30, "the job to finish")
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost", job
    assert job["result"] is None and "succeeded" not in seen
    wait_for(lambda: worker_changed(server, old_pid), 10, "a new worker")


def test_the_database_refuses_succeeded_without_a_result(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, status, params, model_id, device, api, created_at, "
                "progress_fraction, progress_iterations, progress_elapsed_s, cancel_requested) "
                "VALUES ('j1', 'running', '{}', 'm', 'CPU', 'sync', '2026-01-01', 0, 0, 0, 0)"
            )
        )
    for result in ("NULL", "'null'"):
        with pytest.raises(Exception, match="CHECK constraint failed"), store.engine.begin() as c:
            c.execute(text(f"UPDATE jobs SET status = 'succeeded', result = {result}"))
    with pytest.raises(ValueError):
        store.jobs.finish_succeeded("j1", {})
    assert store.jobs.get("j1").status == "running"
    assert store.jobs.finish_succeeded("j1", {"throughput_fps": 1.0})
    store.close()


def test_a_worker_killed_mid_job_fails_it_worker_lost_and_the_next_starts_within_5_s(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    victim = server.submit(model_id=model_id, duration_s=60)
    nxt = server.submit(model_id=model_id, niter=5)
    server.wait_running(victim["id"])
    old_pid = server.worker_pid()
    killed_at = datetime.now(UTC)
    os.kill(old_pid, signal.SIGKILL)

    lost = server.wait_job(victim["id"], timeout_s=5)
    assert lost["status"] == "failed" and lost["error"]["code"] == "worker_lost", lost
    assert f"pid {old_pid}" in lost["error"]["message"]
    started = server.wait_job(nxt["id"], ("running", "succeeded"), timeout_s=10)
    assert (_parse(started["started_at"]) - killed_at).total_seconds() < 5
    assert server.wait_job(nxt["id"])["status"] == "succeeded"
    assert server.job(victim["id"])["status"] == "failed"  # not re-run, never running again


def test_cancel_queued_never_starts_running_stops_within_2_s(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    running = server.start_long_job(e2e_files[0], api="async")
    queued = server.submit(model_id=running["model_id"], niter=5)
    after = server.submit(model_id=running["model_id"], niter=5)

    cancelled = server.client.post(f"/jobs/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
    asked = time.monotonic()
    assert server.client.post(f"/jobs/{running['id']}/cancel").status_code == 200
    stopped = server.wait_job(running["id"], timeout_s=2)
    assert time.monotonic() - asked < 2
    assert stopped["status"] == "cancelled" and stopped["error"]["code"] == "cancelled"
    assert server.wait_job(after["id"])["status"] == "succeeded"
    never = server.job(queued["id"])
    assert never["status"] == "cancelled" and never["started_at"] is None and not never["result"]


def test_a_run_stuck_in_a_native_call_is_killed_after_the_grace_and_the_worker_replaced(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server(env={"OVBENCH_FAULT": "hang_in_run", "OVBENCH_RUN_KILL_GRACE_S": "1"})
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    stuck = server.submit(model_id=model_id, niter=5)
    server.wait_job(stuck["id"], ("running",))
    old_pid = server.worker_pid()
    asked = time.monotonic()
    assert server.client.post(f"/jobs/{stuck['id']}/cancel").status_code == 200
    job = server.wait_job(stuck["id"], timeout_s=5)
    took_s = time.monotonic() - asked
    assert job["status"] == "cancelled", job
    assert "killed and replaced" in job["error"]["message"]
    assert 1 <= took_s < 4  # the grace, then the kill
    assert not pid_alive(old_pid)
    wait_for(lambda: worker_changed(server, old_pid), 10, "a replacement worker")


def test_a_run_past_its_wall_time_budget_is_killed_and_fails_with_timeout(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    # Budget: 1 s allowance + niter x 1 us; a million iterations of real inference take longer.
    env = {"OVBENCH_JOB_ALLOWANCE_S": "1", "OVBENCH_NITER_BUDGET_S": "0.000001"}
    server = make_server(env=env)
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    long = server.submit(model_id=model_id, niter=1_000_000)
    nxt = server.submit(model_id=model_id, niter=5)
    server.wait_running(long["id"])
    old_pid = server.worker_pid()
    job = server.wait_job(long["id"], timeout_s=10)
    assert job["status"] == "failed" and job["error"]["code"] == "timeout", job
    ran_s = (_parse(job["finished_at"]) - _parse(job["started_at"])).total_seconds()
    assert 2 <= ran_s < 4  # budget 2 s, checked 4 times a second
    assert not pid_alive(old_pid)
    assert server.wait_job(nxt["id"])["status"] == "succeeded"
    assert server.worker_pid() != old_pid


def test_wall_time_budget_covers_duration_niter_and_the_device_default() -> None:
    settings = Settings(job_allowance_s=30, niter_budget_s=0.5)
    assert wall_time_budget_s({"duration_s": 10}, settings) == 40
    assert wall_time_budget_s({"niter": 100}, settings) == 80
    assert wall_time_budget_s({"niter": 100, "duration_s": 60}, settings) == 90
    assert (
        wall_time_budget_s({"device": "CPU"}, settings) == 30 + settings.default_duration_s["CPU"]
    )
    assert wall_time_budget_s({"device": "XYZ"}, settings) == 30 + settings.default_duration_s.get(
        "UNKNOWN", 120
    )
