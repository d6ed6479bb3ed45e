"""Start, stop and restart the real service: persistence, clean shutdown, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import OVBENCH, RUN_LOCK_ENV, Server, free_port, pid_alive, wait_for


def test_restart_keeps_models_datasets_jobs_and_results(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    first = make_server()
    model = first.upload_model(e2e_files[0]).json()
    dataset = first.upload_images(e2e_files[1]).json()
    done = first.submit(model_id=model["id"], dataset_id=dataset["id"], niter=20)
    finished = first.wait_job(done["id"])
    assert finished["status"] == "succeeded"
    jobs_before = first.client.get("/jobs").json()
    first.stop()

    second = make_server(first.data_dir)
    assert second.client.get(f"/models/{model['id']}").json() == model
    assert second.client.get(f"/datasets/{dataset['id']}").json() == dataset
    assert second.client.get("/jobs").json() == jobs_before
    assert second.job(done["id"])["result"] == finished["result"]
    assert second.upload_model(e2e_files[0]).status_code == 200  # dedupe across restarts
    again = second.submit(model_id=model["id"], dataset_id=dataset["id"], niter=5)
    assert second.wait_job(again["id"])["status"] == "succeeded"


def test_sigterm_stops_both_processes_within_10_s_and_cancels_the_running_job(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    running = server.start_long_job(e2e_files[0], api="async")
    queued = server.submit(model_id=running["model_id"], niter=5)
    worker_pid = server.worker_pid()
    took_s = server.stop(signal.SIGTERM)
    assert took_s < 10
    assert server.process is not None and server.process.returncode == 0
    wait_for(lambda: not pid_alive(worker_pid), 2, "the worker to be gone")

    after = make_server(server.data_dir)
    stopped = after.job(running["id"])
    assert stopped["status"] == "cancelled" and "shut down" in stopped["error"]["message"]
    assert after.wait_job(queued["id"])["status"] == "succeeded"  # queued jobs run after a restart


def test_ctrl_c_to_the_process_group_stops_cleanly(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    running = server.start_long_job(e2e_files[0])
    worker_pid = server.worker_pid()
    assert server.process is not None
    started = time.monotonic()
    os.killpg(server.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    server.process.wait(timeout=15)
    assert time.monotonic() - started < 10
    wait_for(lambda: not pid_alive(worker_pid), 2, "the worker to be gone")
    after = make_server(server.data_dir)
    assert after.job(running["id"])["status"] == "cancelled"


def test_a_job_left_running_by_a_dead_service_becomes_failed_interrupted(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    running = server.start_long_job(e2e_files[0])
    worker_pid = server.worker_pid()
    assert server.process is not None
    os.kill(worker_pid, signal.SIGSTOP)  # freeze it so it cannot record anything
    server.process.kill()
    server.process.wait(timeout=10)
    os.kill(worker_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(worker_pid), 5, "the frozen worker to die")

    after = make_server(server.data_dir)
    job = after.job(running["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "interrupted"


def test_a_second_serve_on_the_same_data_dir_refuses_to_start(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    running = server.start_long_job(e2e_files[0])
    second = subprocess.run(
        [str(OVBENCH), "serve", "--port", str(free_port()), "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, RUN_LOCK_ENV: str(server.run_lock_path)},
    )
    assert second.returncode == 1
    assert "another ovbench serve" in second.stderr
    assert server.job(running["id"])["status"] == "running"  # not marked interrupted
    server.client.post(f"/jobs/{running['id']}/cancel")
