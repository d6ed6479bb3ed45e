"""Fleet mode in containers: docker-compose.fleet.yml and the GPU agent image, on a real engine.

Brings the whole fleet up (PostgreSQL, RabbitMQ, the API and one agent) with the stand-in
images that .ci/fleet-images.sh builds from Debian's packages (Docker Hub cannot be reached
here; OVBENCH_TEST_POSTGRES_IMAGE and OVBENCH_TEST_RABBITMQ_IMAGE name others, such as the
official postgres:15 and rabbitmq:3.10), on a free port of 127.0.0.1; waits for the agent to
say hello; runs a real benchmark through the published port, which the agent runs; and tears
it all down with the volumes. The ovbench image is the session's one (conftest.py).

Also builds the GPU agent image (docker/agent-gpu: the ovbench image plus Debian's Intel OpenCL
runtime, offline from .deb files that .ci/gpu-debs.sh fetches) and checks what it has. No GPU
here, so OpenVINO lists the CPU only.

Same rules as test_container.py: skipped with the reason when the engine or the base image is
missing, failed instead under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.container.engine import (
    BASE_IMAGE,
    ROOT,
    ComposeProject,
    Engine,
    build_image,
    image_exists,
    remove_image,
    run,
    unavailable,
)
from tests.factories import write_tiny_model

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

COMPOSE_FILE = ROOT / "docker-compose.fleet.yml"
POSTGRES_IMAGE = os.environ.get("OVBENCH_TEST_POSTGRES_IMAGE", "ovbench-postgres:local")
RABBITMQ_IMAGE = os.environ.get("OVBENCH_TEST_RABBITMQ_IMAGE", "ovbench-rabbitmq:local")
CONSUMER_TIMEOUT_MS = 90_000_000  # docker-compose.fleet.yml: 25 h

UP_WITHIN_S = 300  # `up` returns once the API is healthy (the agent waits for it)
AGENT_IDLE_WITHIN_S = 120
JOB_DONE_WITHIN_S = 180
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="session")
def stand_in_images(engine: Engine) -> tuple[str, str]:
    """PostgreSQL and RabbitMQ images: the stand-ins, built once (kept: the script skips them)."""
    if "OVBENCH_TEST_POSTGRES_IMAGE" in os.environ and "OVBENCH_TEST_RABBITMQ_IMAGE" in os.environ:
        return POSTGRES_IMAGE, RABBITMQ_IMAGE
    env = {**os.environ, "OVBENCH_BASE_IMAGE": BASE_IMAGE}
    proc = run(["bash", str(ROOT / ".ci/fleet-images.sh")], env=env, timeout=600, check=False)
    print(proc.stderr)
    if proc.returncode != 0:
        unavailable(f".ci/fleet-images.sh failed:\n{proc.stderr[-3000:]}")
    for tag in (POSTGRES_IMAGE, RABBITMQ_IMAGE):
        assert image_exists(tag), f".ci/fleet-images.sh made no {tag}"
    return POSTGRES_IMAGE, RABBITMQ_IMAGE


class Fleet(ComposeProject):
    """docker-compose.fleet.yml as one compose project, with its own secrets and free port."""

    def __init__(self, engine: Engine, image: str, postgres_image: str, rabbitmq_image: str):
        self.agent_name = f"agent-{uuid.uuid4().hex[:6]}"
        super().__init__(
            engine,
            COMPOSE_FILE,
            "ovbenchfleet",
            {
                "OVBENCH_IMAGE": image,
                "OVBENCH_AGENT_IMAGE": image,
                "OVBENCH_BASE_IMAGE": BASE_IMAGE,
                "OVBENCH_POSTGRES_IMAGE": postgres_image,
                "OVBENCH_RABBITMQ_IMAGE": rabbitmq_image,
                "OVBENCH_POSTGRES_PASSWORD": secrets.token_urlsafe(12),
                "OVBENCH_RABBITMQ_PASSWORD": secrets.token_urlsafe(12),
                "OVBENCH_AGENT_NAME": self.agent_name,
                "OVBENCH_AGENT_TOKEN": secrets.token_urlsafe(24),
            },
        )

    def container(self, service: str) -> str:
        container = self.compose("ps", "--quiet", service).strip()
        assert container, f"compose started no {service} container"
        return container

    def assert_running(self, service: str) -> None:
        """Fail at once when the service's container has exited or restarted (a crash loop)."""
        state = run(
            ["docker", "inspect", "--format", "{{.State.Status}} {{.RestartCount}}",
             self.container(service)],
        ).stdout.split()  # fmt: skip
        assert state == ["running", "0"], f"{service}: {state[0]}, restarted {state[1]} times"

    def volumes(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        return run(["docker", "volume", "ls", "--quiet", "--filter", label]).stdout.split()


def _poll(what: str, within_s: float, probe: Any) -> Any:
    """probe() until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {within_s:.0f} s; last seen: {last!r}")


def _host(client: httpx.Client, name: str) -> dict[str, Any] | None:
    response = client.get("/hosts")
    assert response.status_code == 200, response.text
    hosts: list[dict[str, Any]] = response.json()
    return next((host for host in hosts if host["name"] == name), None)


def _idle(client: httpx.Client, fleet: Fleet) -> dict[str, Any] | None:
    fleet.assert_running("agent")
    host = _host(client, fleet.agent_name)
    return host if host is not None and host["state"] == "idle" else None


def _finished_job(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job if job["status"] in TERMINAL else None


def test_fleet_runs_a_job_on_its_agent(
    engine: Engine, image: str, stand_in_images: tuple[str, str], tmp_path: Path
) -> None:
    fleet = Fleet(engine, image, *stand_in_images)
    try:
        started = time.monotonic()
        fleet.compose("up", "--detach", "--no-build", timeout=UP_WITHIN_S)
        up_s = time.monotonic() - started

        # Only the API is published, and on 127.0.0.1 only.
        published = run(["docker", "port", fleet.container("api"), "8000/tcp"]).stdout.split()
        assert published == [f"127.0.0.1:{fleet.port}"], f"published on {published}"
        for service in ("postgres", "rabbitmq", "agent"):
            ports = run(["docker", "port", fleet.container(service)]).stdout.strip()
            assert not ports, f"{service} publishes {ports}"

        # The broker lets an agent hold a job's message for 25 h.
        timeout = fleet.compose(
            "exec", "-T", "rabbitmq", "rabbitmqctl", "eval",
            "application:get_env(rabbit, consumer_timeout).",
        )  # fmt: skip
        assert f"{{ok,{CONSUMER_TIMEOUT_MS}}}" in timeout, timeout

        with httpx.Client(base_url=fleet.base_url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            host = _poll(
                f"GET /hosts lists {fleet.agent_name} as idle",
                AGENT_IDLE_WITHIN_S,
                lambda: _idle(client, fleet),
            )
            assert "CPU" in json.dumps(host["devices"]), host
            hello_s = time.monotonic() - started

            xml = write_tiny_model(tmp_path / "model")
            files = [
                ("file", (path.name, path.read_bytes(), "application/octet-stream"))
                for path in (xml, xml.with_suffix(".bin"))
            ]
            uploaded = client.post("/models", files=files)
            assert uploaded.status_code == 201, uploaded.text
            created = client.post(
                "/jobs", json={"model_id": uploaded.json()["id"], "device": "CPU", "niter": 20}
            )
            assert created.status_code == 202, created.text
            job = _poll(
                "the job finishes",
                JOB_DONE_WITHIN_S,
                lambda: _finished_job(client, created.json()["id"]),
            )
            assert job["status"] == "succeeded", job
            assert job["host"] == fleet.agent_name, job
            assert job["result"]["throughput_fps"] > 0
            assert job["result"]["latency_ms"]["median"] > 0
            _poll(
                f"{fleet.agent_name} is idle again", AGENT_IDLE_WITHIN_S,
                lambda: _idle(client, fleet),
            )  # fmt: skip
        print(
            f"fleet up {up_s:.1f} s, agent idle after {hello_s:.1f} s, "
            f"job done after {time.monotonic() - started:.1f} s"
        )
        assert len(fleet.volumes()) == 4, fleet.volumes()
    except BaseException:
        print(f"--- logs of compose project {fleet.project}\n{fleet.logs()}")
        raise
    finally:
        teardown = fleet.down_with_volumes()
    assert teardown.returncode == 0, f"`down -v` failed: {teardown.stderr[-2000:]}"
    assert not fleet.volumes(), "`down -v` left volumes behind"


def test_commented_agent_device_passthrough_is_valid_compose(
    engine: Engine, tmp_path: Path
) -> None:
    """Uncommented, the GPU/NPU block of docker-compose.fleet.yml gives the agent the devices."""
    text = COMPOSE_FILE.read_text()
    text = re.sub(r"^(\s*)# (devices:|group_add:)", r"\1\2", text, flags=re.M)
    text = re.sub(r"^(\s*)#(\s+- )", r"\1\2", text, flags=re.M)
    uncommented = tmp_path / "docker-compose.fleet.yml"
    uncommented.write_text(text)
    cmd = [*engine.compose, "--project-directory", str(ROOT), "--file", str(uncommented), "config"]
    config = yaml.safe_load(run(cmd, env={**os.environ, "OVBENCH_RENDER_GID": "4242"}).stdout)
    services = config["services"]
    agent = services["agent"]
    devices = json.dumps(agent["devices"])  # strings (compose 1) or mappings (compose 2)
    for device in ("/dev/dri", "/dev/accel"):
        assert devices.count(device) == 2, devices  # on the host and in the container
    assert [str(gid) for gid in agent["group_add"]] == ["4242"]
    assert all("devices" not in services[name] for name in ("api", "postgres", "rabbitmq"))
    ports = services["api"]["ports"]
    assert "127.0.0.1" in json.dumps(ports), ports
    assert all("ports" not in services[name] for name in ("agent", "postgres", "rabbitmq"))


@pytest.fixture(scope="session")
def gpu_agent_image(engine: Engine, image: str) -> Iterator[str]:
    """docker/agent-gpu on top of the session's ovbench image."""
    env = {**os.environ, "OVBENCH_BASE_IMAGE": BASE_IMAGE}
    proc = run(["bash", str(ROOT / ".ci/gpu-debs.sh")], env=env, timeout=600, check=False)
    print(proc.stderr)
    if proc.returncode != 0:
        unavailable(f".ci/gpu-debs.sh failed:\n{proc.stderr[-3000:]}")
    tag = f"ovbench-agent-gpu-test:{uuid.uuid4().hex[:12]}"
    try:
        build_s = build_image(tag, ROOT / "docker/agent-gpu", {"OVBENCH_IMAGE": image})
        print(f"GPU agent image build {build_s:.1f} s")
        yield tag
    finally:
        remove_image(tag)


def test_gpu_agent_image_has_the_opencl_runtime(gpu_agent_image: str) -> None:
    def inside(*cmd: str) -> str:
        return run(
            ["docker", "run", "--rm", "--network", "none", gpu_agent_image, *cmd], timeout=120
        ).stdout

    # The ICD loader finds Intel's ICD, whose library is there with every library it needs.
    icd = inside("cat", "/etc/OpenCL/vendors/intel.icd").strip()
    assert icd.endswith(".so"), icd
    ldd = inside("ldd", icd)
    assert "not found" not in ldd, ldd
    assert "libOpenCL.so.1 " in inside("ldconfig", "-p")

    # `ovbench devices` runs as the image's user; with no GPU here, it lists the CPU only.
    devices = json.loads(inside("ovbench", "devices", "--json"))
    assert [d["name"] for d in devices] == ["CPU"], devices

    config = json.loads(
        run(["docker", "image", "inspect", "--format", "{{json .Config}}", gpu_agent_image]).stdout
    )
    assert config["User"] == "ovbench"
    assert config["Cmd"] == ["ovbench", "agent"]
    assert config["Healthcheck"]["Test"] == ["NONE"]
