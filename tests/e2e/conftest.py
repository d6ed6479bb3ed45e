"""End-to-end fixtures: the real `ovbench serve` as a subprocess on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import write_known_images, write_tiny_model

OVBENCH = Path(sys.executable).parent / "ovbench"
START_TIMEOUT_S = 60.0
RUN_LOCK_ENV = "OVBENCH_RUN_LOCK_PATH"
FINISHED = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except httpx.TransportError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def own_run_lock(data_dir: Path) -> Path:
    """A test server's run lock: beside its data dir, never the host's default.

    So the suite never waits for (or holds up) a developer's `make serve`, nor one test for
    another; serves on one data dir share it, as they share the dir.
    """
    return data_dir.parent / f"{data_dir.name}.run.lock"


def run_until_exit(
    args: list[str], env: dict[str, str], timeout_s: float = 60
) -> tuple[subprocess.Popen[str], str]:
    """Run a command that must exit by itself (a serve refusing to start): the finished
    process and its output; its process group is killed in any case, so nothing outlives it."""
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc, out


class Server:
    """One `ovbench serve` process; `stop()` sends SIGTERM and waits.

    Its run lock is `env`'s OVBENCH_RUN_LOCK_PATH, else `own_run_lock(data_dir)`.
    """

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = env or {}
        self.run_lock_path = Path(self.env.get(RUN_LOCK_ENV) or own_run_lock(data_dir))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> Server:
        env = {**os.environ, **self.env, RUN_LOCK_ENV: str(self.run_lock_path)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(OVBENCH), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: teardown can reach the worker too
            )
        wait_for(self._ready, START_TIMEOUT_S, f"{self.url}/readyz (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"ovbench serve exited early:\n{self.log_path.read_text()}")
        return self.client.get("/readyz").status_code == 200

    def worker_pid(self) -> int:
        pid: int = self.client.get("/readyz").json()["worker"]["pid"]
        return pid

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15) -> float:
        """Signal the serve process and wait; returns how long it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout_s)
        return time.monotonic() - started

    def kill_group(self) -> None:
        """Last resort at teardown: SIGKILL whatever is left in the server's process group."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.kill_group()
            self.client.close()

    # --- HTTP helpers -------------------------------------------------------------------
    def upload_model(self, xml: Path) -> httpx.Response:
        bin_path = xml.with_suffix(".bin")
        files = [
            ("file", (xml.name, xml.read_bytes())),
            ("file", (bin_path.name, bin_path.read_bytes())),
        ]
        return self.client.post("/models", files=files)

    def upload_images(self, directory: Path) -> httpx.Response:
        files = [("file", (p.name, p.read_bytes())) for p in sorted(directory.iterdir())]
        return self.client.post("/datasets", files=files)

    def submit(self, **params: Any) -> dict[str, Any]:
        response = self.client.post("/jobs", json={"device": "CPU", "api": "sync", **params})
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/jobs/{job_id}").json()
        return body

    def wait_job(
        self, job_id: str, statuses: tuple[str, ...] = FINISHED, timeout_s: float = 30
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        result: dict[str, Any] = wait_for(reached, timeout_s, f"job {job_id} to be {statuses}")
        return result

    def start_long_job(self, model_xml: Path, **params: Any) -> dict[str, Any]:
        """Upload the model, submit a 120 s job and wait until it measures: the running job."""
        model_id = self.upload_model(model_xml).json()["id"]
        running = self.submit(model_id=model_id, duration_s=120, **params)
        return self.wait_running(running["id"])

    def wait_running(self, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
        """Until the job runs and has reported progress (the measurement loop is on)."""

        def measuring() -> dict[str, Any] | None:
            job = self.job(job_id)
            assert job["status"] in ("queued", "running"), job
            return job if job["status"] == "running" and job["progress"]["iterations"] > 0 else None

        result: dict[str, Any] = wait_for(measuring, timeout_s, f"job {job_id} to be measuring")
        return result


@pytest.fixture(scope="session")
def e2e_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny model xml, images dir), written once."""
    base = tmp_path_factory.mktemp("e2e_files")
    return write_tiny_model(base / "model"), write_known_images(base / "images")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers on demand; all are stopped (and their groups killed) at teardown."""
    servers: list[Server] = []

    def make(data_dir: Path | None = None, env: dict[str, str] | None = None) -> Server:
        server = Server(data_dir or tmp_path / "data", tmp_path / "serve.log", env)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group `pgid` (a server's, started in its own session)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def uploaded_model_id(server: Server, xml: Path) -> str:
    """Upload the model at `xml` (and its .bin) to `server`; its id (200 or 201)."""
    response = server.upload_model(xml)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def plain_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Server]:
    """For a module's `server` fixture: one plain server in its own temp dir (no host guard:
    tests/conftest.py turns it off for every service), closed at the end."""
    base = tmp_path_factory.mktemp(name)
    srv = Server(base / "data", base / "serve.log").start()
    yield srv
    srv.close()


def create_sweep(server: Server, **payload: Any) -> dict[str, Any]:
    """POST /sweeps: 202 with its Location; the sweep's JSON."""
    response = server.client.post("/sweeps", json=payload)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/sweeps/{body['id']}"
    return body


def read_sweep(server: Server, sweep_id: str) -> dict[str, Any]:
    """GET /sweeps/{id}: 200; the sweep's JSON."""
    response = server.client.get(f"/sweeps/{sweep_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
