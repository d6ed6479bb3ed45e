"""Fleet fixtures: real PostgreSQL and RabbitMQ (tests/servers.py), real `ovbench serve` API
processes in fleet mode and real `ovbench agent` processes, each agent its own host name,
cache and run lock, all on 127.0.0.1.

Timeouts are short here so the guarantees can be watched within seconds: heartbeat timeout
3 s, sweeps every 0.3 s, start deadline 4 s, republish after 4 s.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FINISHED, OVBENCH, free_port, wait_for
from tests.factories import write_tiny_model
from tests.servers import PostgresServer, RabbitMQServer

START_TIMEOUT_S = 60.0
HEARTBEAT_TIMEOUT_S = 3.0
SWEEP_INTERVAL_S = 0.3
START_DEADLINE_S = 4.0
REPUBLISH_AFTER_S = 4.0
PUBLISH_GRACE_S = 1.0
HOST_NAMES = ("lab-a", "lab-b", "lab-c", "sim-a", "sim-b")


@dataclass
class Fleet:
    """One fleet: a database, a broker vhost, agent tokens; APIs and agents started on demand."""

    base: Path
    database_url: str
    broker_url: str
    rabbitmq: RabbitMQServer
    postgres: PostgresServer
    vhost: str
    tokens: dict[str, str] = field(default_factory=dict)  # host name -> token
    user_token: str = field(default_factory=lambda: secrets.token_hex(16))
    apis: list[Api] = field(default_factory=list)
    agents: list[AgentProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in HOST_NAMES:  # the APIs know every agent token from their start
            self.tokens[name] = secrets.token_hex(16)

    def token(self, name: str) -> str:
        return self.tokens[name]

    def api_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "OVBENCH_DATABASE_URL": self.database_url,
            "OVBENCH_BROKER_URL": self.broker_url,
            "OVBENCH_AGENT_TOKENS": ",".join(f"{n}={t}" for n, t in self.tokens.items()),
            "OVBENCH_API_TOKENS": self.user_token,
            "OVBENCH_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
            "OVBENCH_SWEEP_INTERVAL_S": str(SWEEP_INTERVAL_S),
            "OVBENCH_HOST_START_DEADLINE_S": str(START_DEADLINE_S),
            "OVBENCH_REPUBLISH_AFTER_S": str(REPUBLISH_AFTER_S),
            "OVBENCH_PUBLISH_GRACE_S": str(PUBLISH_GRACE_S),
            **(extra or {}),
        }

    def start_api(self, extra_env: dict[str, str] | None = None, port: int | None = None) -> Api:
        api = Api(self, port or free_port(), extra_env or {})
        self.apis.append(api)
        return api.start()

    def start_agent(self, name: str, api: Api, **env: str) -> AgentProcess:
        agent = AgentProcess(self, name, api, env)
        self.agents.append(agent)
        return agent.start()

    def queue_messages(self, host: str) -> int:
        """Messages in the host's queue, ready or unacknowledged (rabbitmqctl)."""
        listed = self.rabbitmq.ctl("list_queues", "-p", self.vhost, "--quiet", "name", "messages")
        assert listed.returncode == 0, listed.stderr
        for line in listed.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == f"ovbench.host.{host}":
                return int(parts[1])
        return 0

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        for api in self.apis:
            api.close()


class _Process:
    process: subprocess.Popen[bytes] | None = None
    log_path: Path

    def signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)

    def kill9(self) -> None:
        """kill -9 of the process and everything it started (its process group)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


class Api(_Process):
    """`ovbench serve` in fleet mode (no local worker) on a free port of 127.0.0.1."""

    def __init__(self, fleet: Fleet, port: int, extra_env: dict[str, str]) -> None:
        self.fleet = fleet
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.extra_env = extra_env
        self.data_dir = fleet.base / "api-data"  # shared by every replica
        self.log_path = fleet.base / f"api-{port}.log"
        self.client = httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Authorization": f"Bearer {fleet.user_token}"},
        )

    def start(self) -> Api:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(OVBENCH), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=self.fleet.api_env(self.extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._ready, START_TIMEOUT_S, f"{self.url}/readyz (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"ovbench serve exited early:\n{self.log()}")
        return self.client.get("/readyz").status_code == 200

    def close(self) -> None:
        super().close()
        self.client.close()

    # --- HTTP helpers ---------------------------------------------------------------
    def upload_model(self, xml: Path) -> str:
        bin_path = xml.with_suffix(".bin")
        files = [
            ("file", (xml.name, xml.read_bytes())),
            ("file", (bin_path.name, bin_path.read_bytes())),
        ]
        response = self.client.post("/models", files=files)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def submit(self, **params: Any) -> dict[str, Any]:
        response = self.client.post("/jobs", json={"device": "CPU", **params})
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_job(
        self, job_id: str, statuses: tuple[str, ...] = FINISHED, timeout_s: float = 60
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        found: dict[str, Any] = wait_for(reached, timeout_s, f"job {job_id} to be {statuses}")
        return found

    def hosts(self) -> dict[str, dict[str, Any]]:
        response = self.client.get("/hosts")
        assert response.status_code == 200, response.text
        return {h["name"]: h for h in response.json()}

    def wait_host(
        self, name: str, states: tuple[str, ...], timeout_s: float = 60
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            host = self.hosts().get(name)
            return host if host is not None and host["state"] in states else None

        found: dict[str, Any] = wait_for(reached, timeout_s, f"host {name} to be {states}")
        return found


class AgentProcess(_Process):
    """`ovbench agent` for one host name, with its own cache and run lock."""

    def __init__(self, fleet: Fleet, name: str, api: Api, env: dict[str, str]) -> None:
        self.fleet = fleet
        self.name = name
        self.api = api
        self.env = env
        self.dir = fleet.base / f"agent-{name}"
        self.dir.mkdir(exist_ok=True)
        self.log_path = self.dir / "agent.log"

    def start(self, wait: bool = True) -> AgentProcess:
        env = {
            **os.environ,
            "OVBENCH_AGENT_API": self.api.url,
            "OVBENCH_AGENT_TOKEN": self.fleet.tokens[self.name],
            "OVBENCH_AGENT_NAME": self.name,
            "OVBENCH_BROKER_URL": self.fleet.broker_url,
            "OVBENCH_AGENT_CACHE_DIR": str(self.dir / "cache"),
            "OVBENCH_RUN_LOCK_PATH": str(self.dir / "run.lock"),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(OVBENCH), "agent"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            wait_for(self._consuming, START_TIMEOUT_S, f"agent {self.name} (log: {self.log_path})")
        return self

    def _consuming(self) -> bool:
        if not self.alive():
            raise AssertionError(f"ovbench agent {self.name} exited early:\n{self.log()}")
        # Registered, and Celery says it is ready (its queue is declared and consumed).
        return " ready." in self.log() and self.name in self.api.hosts()


@pytest.fixture(scope="session")
def fleet_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("fleet_model"))


@pytest.fixture
def fleet(
    postgres: PostgresServer, rabbitmq: RabbitMQServer, postgres_url: str, tmp_path: Path
) -> Iterator[Fleet]:
    """A fresh database and a fresh RabbitMQ vhost; every API and agent stopped at the end."""
    vhost = f"ovbench-{uuid.uuid4().hex[:8]}"
    for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")):
        done = rabbitmq.ctl(*args)
        assert done.returncode == 0, done.stderr
    broker_url = f"amqp://guest:guest@127.0.0.1:{rabbitmq.port}/{vhost}"
    fleet = Fleet(tmp_path, postgres_url, broker_url, rabbitmq, postgres, vhost)
    try:
        yield fleet
    finally:
        fleet.close()
        rabbitmq.ctl("delete_vhost", vhost)
