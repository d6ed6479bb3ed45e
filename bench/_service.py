"""Shared by the bench scripts: a real `ovbench serve` on a free loopback port, and a client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

BIN = Path(sys.executable).parent


def async_job(duration_s: float) -> dict[str, Any]:
    """benchmark_app's `-api async -nireq 2 -nstreams 2 -hint none -t N` as a JobCreate body."""
    return {
        "device": "CPU",
        "api": "async",
        "nireq": 2,
        "nstreams": "2",
        "hint": "none",
        "duration_s": duration_s,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """`ovbench serve` in a temp data dir; `with Service() as svc: svc.client.get(...)`."""

    def __init__(self, data_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="ovbench-bench-"))
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "serve.log"
        # Its own run lock unless `env` names one: a bench never waits behind a developer's
        # `make serve`, nor holds one up.
        own_lock = str(self.data_dir / "run.lock")
        self._env = {**os.environ, "OVBENCH_RUN_LOCK_PATH": own_lock, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.base_url, timeout=60)

    def __enter__(self) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(BIN / "ovbench"),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ovbench serve exited; see {self.log_path}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ovbench serve not ready in 60 s; see {self.log_path}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def upload_model(self, xml: Path) -> str:
        files = [
            ("file", (p.name, p.open("rb"))) for p in (xml, xml.with_suffix(".bin")) if p.exists()
        ]
        try:
            response = self.client.post("/models", files=files)
        finally:
            for _, (_, handle) in files:
                handle.close()
        response.raise_for_status()
        return str(response.json()["id"])

    def submit(self, body: dict[str, Any]) -> str:
        response = self.client.post("/jobs", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"POST /jobs gave {response.status_code}: {response.text}")
        return str(response.json()["id"])

    def wait(self, job_id: str, poll_s: float = 0.5, timeout_s: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.client.get(f"/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                if job["status"] != "succeeded":
                    raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
                return dict(job)
            time.sleep(poll_s)
        raise TimeoutError(f"job {job_id} not finished in {timeout_s} s")


def sample_model(name: str, models_dir: Path | None = None) -> Path:
    """The sample model `name` (resnet50, mobilenet_v2, tiny_cnn), written once into models_dir."""
    directory = models_dir or Path(tempfile.gettempdir()) / "ovbench-bench-models"
    xml = directory / f"{name}.xml"
    if not xml.exists():
        subprocess.run(
            [str(BIN / "ovbench"), "make-models", str(directory), "--only", name], check=True
        )
    return xml
