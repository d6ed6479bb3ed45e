"""Guarantee 3: at most one benchmark per host, even with a second worker on the data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from app.settings import Settings
from app.store import Store
from app.worker.run_lock import RunLock
from tests.e2e.conftest import OVBENCH, Server, free_port, pid_alive, wait_for

JOBS = 12


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A worker process of its own (outside any serve), logging to log_path."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.worker", "--settings-json", settings.model_dump_json()],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_the_run_lock_is_exclusive_and_released_by_the_kernel_when_its_holder_dies(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from app.worker.run_lock import RunLock
                assert RunLock({str(tmp_path)!r}).try_acquire()
                print("held", flush=True)
                time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = RunLock(tmp_path)
        assert not mine.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert mine.try_acquire()  # no clean-up ran: the kernel dropped the lock
        other = RunLock(tmp_path)
        assert not other.try_acquire()  # one holder at a time, within a process too
        mine.release()
        assert other.try_acquire()
        other.close()
        mine.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_second_worker_on_the_same_data_dir_waits_and_runs_never_overlap(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path], tmp_path: Path
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    first = server.submit(model_id=model_id, api="sync", duration_s=60)
    server.wait_running(first["id"])
    serve_worker = server.worker_pid()

    settings = Settings(data_dir=server.data_dir, worker_poll_interval_s=0.01)
    log_path = tmp_path / "second-worker.log"
    second = _start_worker(settings, log_path)
    try:
        wait_for(
            lambda: "waiting for it before running any job" in log_path.read_text(),
            30,
            "the second worker to report it waits for the run lock",
        )
        assert server.job(first["id"])["status"] == "running"
        server.client.post(f"/jobs/{first['id']}/cancel")
        ids = [
            server.submit(model_id=model_id, api=("sync", "async")[i % 2], niter=10)["id"]
            for i in range(JOBS)
        ]
        jobs = [server.wait_job(job_id) for job_id in [first["id"], *ids]]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
    assert jobs[0]["status"] == "cancelled"
    assert all(job["status"] == "succeeded" for job in jobs[1:]), [j["error"] for j in jobs]
    intervals = sorted((_parse(j["started_at"]), _parse(j["finished_at"])) for j in jobs)
    for (_, end), (start, _) in pairwise(intervals):
        assert start >= end, f"two runs overlapped: one ended {end}, the next started {start}"
    store = Store(server.data_dir)
    ran_by = Counter(store.jobs.get(j["id"]).worker_pid for j in jobs[1:])
    store.close()
    assert set(ran_by) <= {serve_worker, second.pid}
    print(f"jobs per worker pid: {dict(ran_by)} (second worker {second.pid})")


def test_a_second_serve_on_the_same_data_dir_refuses_with_a_clear_message(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    running = server.submit(model_id=model_id, duration_s=30)
    server.wait_running(running["id"])
    worker_pid = server.worker_pid()
    second = subprocess.run(
        [str(OVBENCH), "serve", "--port", str(free_port()), "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert second.returncode == 1
    assert "another ovbench serve is using" in second.stderr
    assert server.job(running["id"])["status"] == "running"
    assert pid_alive(worker_pid) and server.worker_pid() == worker_pid


def test_a_serve_started_beside_a_running_worker_leaves_its_job_alone_and_waits(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path], tmp_path: Path
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    server.stop()
    data_dir = server.data_dir
    store = Store(data_dir)
    running = store.jobs.create(
        {"model_id": model_id, "device": "CPU", "api": "sync", "duration_s": 60}, max_queue=10
    )
    settings = Settings(data_dir=data_dir, worker_poll_interval_s=0.05)
    stray = _start_worker(settings, tmp_path / "stray-worker.log")
    try:
        wait_for(
            lambda: store.jobs.get(running.id).progress_iterations > 0, 30, "the stray worker's run"
        )
        after = make_server(data_dir)
        assert after.job(running.id)["status"] == "running"  # not marked interrupted
        nxt = after.submit(model_id=model_id, niter=5)
        assert after.job(nxt["id"])["status"] == "queued"  # the service's worker waits
        assert after.client.post(f"/jobs/{running.id}/cancel").status_code == 200
        assert after.wait_job(running.id, timeout_s=5)["status"] == "cancelled"
        done = after.wait_job(nxt["id"])
        assert done["status"] == "succeeded"
        assert _parse(done["started_at"]) >= _parse(after.job(running.id)["finished_at"])
    finally:
        stray.send_signal(signal.SIGTERM)
        stray.wait(timeout=15)
        store.close()
