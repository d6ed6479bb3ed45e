"""A whole fleet on this machine: PostgreSQL, RabbitMQ, one API and device-host agents.

`make fleet-demo` (python scripts/local_fleet.py) starts it for a newcomer to try, prints how
to use it, and stops everything on Ctrl-C. bench/fleet_latency.py uses `LocalFleet` too.

PostgreSQL and RabbitMQ come from Debian's packages (`make servers` installs them) and run
on 127.0.0.1 ephemeral ports in a temporary directory (tests/servers.py starts them). Every
agent is its own "host" with its own cache and run lock, so on one machine two agents run
two benchmarks at once and disturb each other's figures: a demo of the fleet, not a way to
measure. On real device hosts each agent has the machine to itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import postgres_server, rabbitmq_server  # noqa: E402

OVBENCH = Path(sys.executable).parent / "ovbench"
START_TIMEOUT_S = 90.0


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if predicate():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")


class LocalFleet:
    """`with LocalFleet(["lab-a", "lab-b"]) as fleet:` PostgreSQL, RabbitMQ, an API on
    `port` (0: a free one) and one agent per name; `fleet.client` is a user client."""

    def __init__(
        self,
        agents: list[str],
        port: int = 0,
        labels: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        agent_env: dict[str, str] | None = None,
    ) -> None:
        self.names = agents
        self.labels = labels or {}
        self.env = env or {}
        self.agent_env = agent_env or {}
        self.base = Path(tempfile.mkdtemp(prefix="ovbench-fleet-"))
        self.tokens = {name: secrets.token_hex(16) for name in agents}
        self.user_token = secrets.token_hex(16)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stack = contextlib.ExitStack()
        self.port = port
        self.url = ""
        self.database_url = ""
        self.broker_url = ""

    def __enter__(self) -> LocalFleet:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spawn(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                args,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def _start(self) -> None:
        postgres = self._stack.enter_context(postgres_server())
        rabbitmq = self._stack.enter_context(rabbitmq_server())
        self.database_url = postgres.url(postgres.create_database())
        self.broker_url = rabbitmq.url
        if not self.port:
            from tests.servers import free_port

            self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_log = self.base / "api.log"
        api = self._spawn(
            [str(OVBENCH), "serve", "--port", str(self.port), "--data-dir", str(self.base / "api")],
            {
                "OVBENCH_DATABASE_URL": self.database_url,
                "OVBENCH_BROKER_URL": self.broker_url,
                "OVBENCH_AGENT_TOKENS": ",".join(f"{n}={t}" for n, t in self.tokens.items()),
                "OVBENCH_API_TOKENS": self.user_token,
                **self.env,
            },
            self.api_log,
        )
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.user_token}"}, timeout=30
        )

        def api_ready() -> bool:
            if api.poll() is not None:
                raise RuntimeError(f"ovbench serve exited:\n{self.api_log.read_text()[-3000:]}")
            return self.client.get("/readyz").status_code == 200

        _wait(api_ready, START_TIMEOUT_S, f"the API ({self.api_log})")
        for name in self.names:
            directory = self.base / f"agent-{name}"
            directory.mkdir()
            self._spawn(
                [str(OVBENCH), "agent"],
                {
                    "OVBENCH_AGENT_API": self.url,
                    "OVBENCH_AGENT_TOKEN": self.tokens[name],
                    "OVBENCH_AGENT_NAME": name,
                    "OVBENCH_AGENT_LABELS": self.labels.get(name, ""),
                    "OVBENCH_BROKER_URL": self.broker_url,
                    "OVBENCH_AGENT_CACHE_DIR": str(directory / "cache"),
                    "OVBENCH_RUN_LOCK_PATH": str(directory / "run.lock"),
                    **self.agent_env,
                },
                directory / "agent.log",
            )

        def all_idle() -> bool:
            hosts = {h["name"]: h["state"] for h in self.client.get("/hosts").json()}
            return all(hosts.get(name) == "idle" for name in self.names) and all(
                "ready." in (self.base / f"agent-{n}" / "agent.log").read_text() for n in self.names
            )

        _wait(all_idle, START_TIMEOUT_S, f"agents {', '.join(self.names)} to be idle")

    def upload_model(self, xml: Path) -> str:
        files = [
            ("file", (xml.name, xml.read_bytes())),
            ("file", (xml.with_suffix(".bin").name, xml.with_suffix(".bin").read_bytes())),
        ]
        response = self.client.post("/models", files=files)
        response.raise_for_status()
        return str(response.json()["id"])

    def close(self) -> None:
        for process in reversed(self.processes):  # agents first, then the API
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._stack.close()
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make fleet-demo", description="PostgreSQL, RabbitMQ, an API and two agents here."
    )
    parser.add_argument("--port", type=int, default=8000, help="The API's port (default 8000)")
    args = parser.parse_args(argv)
    names = ["lab-a", "lab-b"]
    print("starting PostgreSQL, RabbitMQ, the API and agents lab-a, lab-b ...", flush=True)
    with LocalFleet(names, port=args.port, labels={"lab-a": "room=1", "lab-b": "room=2"}) as fleet:
        token = fleet.user_token
        print(
            f"""
ovbench fleet demo: API {fleet.url}, agents {", ".join(names)} (logs in {fleet.base})

  export OVBENCH_TOKEN={token}
  curl -s -H "Authorization: Bearer $OVBENCH_TOKEN" {fleet.url}/hosts
  ovbench make-models ./var/sample-models
  curl -s -H "Authorization: Bearer $OVBENCH_TOKEN" -F file=@var/sample-models/tiny_cnn.xml \\
       -F file=@var/sample-models/tiny_cnn.bin {fleet.url}/models
  curl -s -H "Authorization: Bearer $OVBENCH_TOKEN" -H 'Content-Type: application/json' \\
       -d '{{"model_id": "<id>", "niter": 100, "host_labels": {{"room": "2"}}}}' {fleet.url}/jobs

Ctrl-C stops everything.""",
            flush=True,
        )
        stop = False

        def _stop(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop:
            time.sleep(0.2)
        print("stopping ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
