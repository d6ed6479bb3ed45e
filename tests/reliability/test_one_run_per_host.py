"""Guarantee 3: at most one benchmark per host: a second worker on the data dir, or a second
serve on another data dir, waits for the host's run lock; a different lock path is another host.

Every server and worker here has a lock path of its own under tmp_path, never the host's
default, so the suite neither waits for a developer's `make serve` nor holds it up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.store import Store
from app.worker.run_lock import RunLock, RunLockError, default_lock_path
from tests.e2e.conftest import (
    OVBENCH,
    RUN_LOCK_ENV,
    Server,
    free_port,
    group_alive,
    pid_alive,
    run_until_exit,
    wait_for,
)

JOBS = 12
NOBODY = 65534


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _assert_never_overlap(jobs: list[dict[str, Any]]) -> None:
    intervals = sorted((_parse(j["started_at"]), _parse(j["finished_at"])) for j in jobs)
    for (_, end), (start, _) in pairwise(intervals):
        assert start >= end, f"two runs overlapped: one ended {end}, the next started {start}"


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
                assert RunLock({str(tmp_path / "run.lock")!r}).try_acquire()
                print("held", flush=True)
                time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = RunLock(tmp_path / "run.lock")
        assert not mine.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert mine.try_acquire()  # no clean-up ran: the kernel dropped the lock
        other = RunLock(tmp_path / "run.lock")
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

    settings = Settings(
        data_dir=server.data_dir, worker_poll_interval_s=0.01, run_lock_path=server.run_lock_path
    )
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
    _assert_never_overlap(jobs)
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
        env={**os.environ, RUN_LOCK_ENV: str(server.run_lock_path)},
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
    settings = Settings(
        data_dir=data_dir, worker_poll_interval_s=0.05, run_lock_path=server.run_lock_path
    )
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


# --- one lock per host, whatever the data dir ------------------------------------------------


def test_two_serves_on_different_data_dirs_with_one_lock_path_never_run_at_once(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path], tmp_path: Path
) -> None:
    lock_path = tmp_path / "host" / "run.lock"  # its directory is made on demand
    env = {RUN_LOCK_ENV: str(lock_path)}
    first = make_server(tmp_path / "first", env=env)
    second = make_server(tmp_path / "second", env=env)
    servers = (first, second)
    model_ids = [srv.upload_model(e2e_files[0]).json()["id"] for srv in servers]
    long = first.submit(model_id=model_ids[0], api="sync", duration_s=60)
    first.wait_running(long["id"])
    waits = f"pid {second.worker_pid()}: another process holds {lock_path}"
    wait_for(lambda: waits in first.log_path.read_text(), 30, "the second serve's worker to wait")
    behind = second.submit(model_id=model_ids[1], niter=5)  # must not start while `long` runs
    assert second.job(behind["id"])["status"] == "queued"
    assert first.client.post(f"/jobs/{long['id']}/cancel").status_code == 200
    submitted = [(first, long["id"]), (second, behind["id"])]
    for i in range(JOBS):
        srv = servers[i % 2]
        api = ("sync", "async")[i // 2 % 2]
        submitted.append((srv, srv.submit(model_id=model_ids[i % 2], api=api, niter=10)["id"]))
    jobs = [srv.wait_job(job_id) for srv, job_id in submitted]
    assert jobs[0]["status"] == "cancelled"
    assert all(job["status"] == "succeeded" for job in jobs[1:]), [j["error"] for j in jobs]
    _assert_never_overlap(jobs)
    # Made by the first serve so that any user's ovbench may use them (run_lock.py).
    assert stat.S_IMODE(lock_path.parent.stat().st_mode) == 0o1777
    assert stat.S_IMODE(lock_path.stat().st_mode) == 0o666


def test_two_serves_with_different_lock_paths_run_at_once(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """The control for the test above: what serializes them is the shared lock path."""
    first = make_server(tmp_path / "first", env={RUN_LOCK_ENV: str(tmp_path / "first.lock")})
    second = make_server(tmp_path / "second", env={RUN_LOCK_ENV: str(tmp_path / "second.lock")})
    one = first.start_long_job(e2e_files[0], api="sync")
    two = second.start_long_job(e2e_files[0], api="sync")  # measures while `one` still runs
    assert first.job(one["id"])["status"] == "running"
    for srv, job in ((first, one), (second, two)):
        assert srv.client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    one, two = first.wait_job(one["id"]), second.wait_job(two["id"])
    assert one["status"] == two["status"] == "cancelled"
    assert _parse(two["started_at"]) < _parse(one["finished_at"])
    assert "another process holds" not in first.log_path.read_text()


def test_the_default_lock_path_is_one_per_host_and_outside_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(RUN_LOCK_ENV, raising=False)
    data_dir = tmp_path / "data"
    path = Settings(data_dir=data_dir).run_lock_path
    assert path == Settings(data_dir=tmp_path / "other").run_lock_path == default_lock_path()
    assert path.is_absolute() and not path.is_relative_to(data_dir.resolve())
    assert path in (Path("/run/lock/ovbench/run.lock"), Path("/tmp/ovbench/run.lock"))
    monkeypatch.setenv(RUN_LOCK_ENV, str(tmp_path / "mine.lock"))
    assert Settings(data_dir=data_dir).run_lock_path == tmp_path / "mine.lock"

    # The choice depends on the host only: /run/lock when anyone may make ovbench/ in it
    # (1777) or an administrator made it, else the host's temp dir.
    run, temp = tmp_path / "run-lock", tmp_path / "tmp"
    assert default_lock_path(run, temp) == temp / "ovbench" / "run.lock"  # no /run/lock
    run.mkdir(mode=0o755)
    assert default_lock_path(run, temp) == temp / "ovbench" / "run.lock"  # root's only
    run.chmod(0o1777)
    assert default_lock_path(run, temp) == run / "ovbench" / "run.lock"
    run.chmod(0o755)
    (run / "ovbench").mkdir()
    assert default_lock_path(run, temp) == run / "ovbench" / "run.lock"


@contextlib.contextmanager
def _unopenable(kind: str, tmp_path: Path) -> Iterator[Path]:
    """A lock path that cannot be opened (even by root)."""
    if kind == "a directory":
        yield tmp_path
    elif kind == "a symlink":
        target = tmp_path / "elsewhere"
        link = tmp_path / "run.lock"
        link.symlink_to(target)
        yield link
        assert not target.exists(), "the planted symlink was followed"
    elif kind == "a fifo":
        os.mkfifo(tmp_path / "run.lock")
        yield tmp_path / "run.lock"
    else:
        yield tmp_path / "missing" / "deeper" / "run.lock"


@pytest.mark.parametrize("kind", ["a directory", "a symlink", "a fifo", "missing parents"])
def test_a_lock_path_that_cannot_be_opened_stops_serve_at_start_up(
    tmp_path: Path, kind: str
) -> None:
    data_dir = tmp_path / "data"
    with _unopenable(kind, tmp_path) as lock_path:
        proc, out = run_until_exit(
            [str(OVBENCH), "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
            {**os.environ, RUN_LOCK_ENV: str(lock_path)},
        )
    assert proc.returncode == 1, out
    assert f"ERROR [serve {proc.pid}] app.serve: cannot open the run lock {lock_path}: " in out
    assert f"set {RUN_LOCK_ENV} to a file" in out
    assert "Traceback" not in out and "serving on" not in out
    assert "worker process" not in out and not group_alive(proc.pid)


def test_a_symlink_or_fifo_at_the_lock_path_is_refused_naming_why(tmp_path: Path) -> None:
    (tmp_path / "link.lock").symlink_to(tmp_path / "target")
    with pytest.raises(RunLockError, match="it is a symbolic link"):
        RunLock(tmp_path / "link.lock")
    assert not (tmp_path / "target").exists()
    os.mkfifo(tmp_path / "fifo.lock")
    with pytest.raises(RunLockError, match="it is not a regular file"):
        RunLock(tmp_path / "fifo.lock")  # nor does opening it hang


def _as_nobody(path: Path, report: int, go: int) -> None:
    """Forked child: become `nobody`, open the lock, try it; again once the parent says go."""
    code = 1
    try:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        lock = RunLock(path)
        os.write(report, b"1" if lock.try_acquire() else b"0")
        os.read(go, 1)
        os.write(report, b"1" if lock.try_acquire() else b"0")
        code = 0
    except BaseException as exc:
        os.write(report, f"E{exc}".encode())
    finally:
        os._exit(code)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run a process as another user")
def test_a_lock_made_by_one_user_under_a_strict_umask_is_lockable_by_another() -> None:
    # Outside tmp_path: pytest makes that 0700, and `nobody` must reach the lock's directory.
    base = Path(tempfile.mkdtemp(prefix="ovbench-run-lock-"))
    base.chmod(0o755)
    path = base / "ovbench" / "run.lock"
    old_umask = os.umask(0o077)
    try:
        mine = RunLock(path)  # root makes the directory and the file
    except BaseException:
        shutil.rmtree(base)
        raise
    finally:
        os.umask(old_umask)
    child = 0
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o1777
        assert stat.S_IMODE(path.stat().st_mode) == 0o666
        assert mine.try_acquire()
        child = os.fork()
        if child == 0:
            _as_nobody(path, report_w, go_r)
        first = os.read(report_r, 4096)
        assert first == b"0", f"nobody: {first!r}"  # opened it, and found it held
        mine.release()
        os.write(go_w, b"g")
        second = os.read(report_r, 4096)
        assert second == b"1", f"nobody: {second!r}"  # took it once root let go
        _, status = os.waitpid(child, 0)
        child = 0
        assert os.waitstatus_to_exitcode(status) == 0
        assert mine.try_acquire()  # the kernel dropped nobody's lock when it exited
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        mine.close()
        for fd in (report_r, report_w, go_r, go_w):
            os.close(fd)
        shutil.rmtree(base)
