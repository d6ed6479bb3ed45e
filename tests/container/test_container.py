"""The container, built and run for real: Dockerfile and docker-compose.yml on a Docker engine.

Builds the image with no network from the wheelhouse, starts it with compose on a free port of
127.0.0.1, waits for the HEALTHCHECK to say healthy, runs a real benchmark through the
published port, checks that models and jobs survive `down`/`up` on the named volume, and
tears everything down.

Needs a Docker engine, compose and a base image (tests/container/engine.py says which); without
them the test is skipped, with the reason; with CI=true it fails instead, since CI must run it.
The image is built once a session (conftest.py) and shared with the other container tests.
Deselect with `pytest -m "not container"`.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.container.engine import BASE_IMAGE, ROOT, ComposeProject, Engine, run
from tests.factories import write_tiny_model

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

COMPOSE_FILE = ROOT / "docker-compose.yml"

HEALTHY_WITHIN_S = 120
JOB_DONE_WITHIN_S = 120
TERMINAL = {"succeeded", "failed", "cancelled"}


def _last_check(state: dict[str, Any]) -> str:
    checks = (state.get("Health") or {}).get("Log") or [{}]
    output = str(checks[-1].get("Output", "")).strip().splitlines()
    return f"exit code {checks[-1].get('ExitCode')}: {output[-1] if output else '(nothing)'}"


class Deployment(ComposeProject):
    """docker-compose.yml as one compose project running the image on a free port."""

    def __init__(self, engine: Engine, image: str) -> None:
        super().__init__(
            engine,
            COMPOSE_FILE,
            "ovbenchtest",
            {"OVBENCH_IMAGE": image, "OVBENCH_BASE_IMAGE": BASE_IMAGE},
        )
        self.volume = f"{self.project}_ovbench-data"

    def up(self) -> str:
        """Start the service; return its container id once the HEALTHCHECK says healthy."""
        self.compose("up", "--detach", "--no-build")
        container = self.compose("ps", "--quiet", "ovbench").strip()
        assert container, "compose started no ovbench container"
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while True:
            state = json.loads(
                run(["docker", "inspect", "--format", "{{json .State}}", container]).stdout
            )
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return container
            assert state["Status"] in {"created", "running", "restarting"}, (
                f"the container stopped ({state['Status']}, exit code {state.get('ExitCode')})"
            )
            assert health is not None, "the image has no HEALTHCHECK"
            assert health != "unhealthy" and time.monotonic() < deadline, (
                f"{health} after {HEALTHY_WITHIN_S - (deadline - time.monotonic()):.0f} s; "
                f"last check said: {_last_check(state)}"
            )
            time.sleep(0.5)

    def volume_exists(self) -> bool:
        names = run(["docker", "volume", "ls", "--quiet", "--filter", f"name={self.volume}"]).stdout
        return self.volume in names.split()


def _wait_for_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_DONE_WITHIN_S
    while True:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job not done after {JOB_DONE_WITHIN_S} s: {job}"
        time.sleep(0.2)


def _upload_tiny_model(client: httpx.Client, directory: Path) -> httpx.Response:
    xml = write_tiny_model(directory)
    files = [
        ("file", (path.name, path.read_bytes(), "application/octet-stream"))
        for path in (xml, xml.with_suffix(".bin"))
    ]
    return client.post("/models", files=files)


def test_image_runs_a_benchmark_and_keeps_data_across_down_and_up(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    deployment = Deployment(engine, image)
    try:
        container = deployment.up()

        config = json.loads(
            run(["docker", "inspect", "--format", "{{json .Config}}", container]).stdout
        )
        assert config["User"] == "ovbench", "the service must not run as root"
        assert any("/healthz" in part for part in config["Healthcheck"]["Test"])
        published = run(["docker", "port", container, "8000/tcp"]).stdout.split()
        assert published == [f"127.0.0.1:{deployment.port}"], f"published on {published}"

        with httpx.Client(base_url=deployment.base_url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            uploaded = _upload_tiny_model(client, tmp_path / "model")
            assert uploaded.status_code == 201, uploaded.text
            model = uploaded.json()

            created = client.post(
                "/jobs",
                json={"model_id": model["id"], "device": "CPU", "api": "sync", "niter": 50},
            )
            assert created.status_code == 202, created.text
            job = _wait_for_job(client, created.json()["id"])
            assert job["status"] == "succeeded", job
            assert job["result"]["throughput_fps"] > 0
            assert job["result"]["latency_ms"]["median"] > 0

        # Down (the container goes, the named volume stays) and up again: a new container on
        # the same volume still has the model's files, the job and its result.
        deployment.compose("down", timeout=180)
        assert deployment.volume_exists(), "`down` without -v removed the named volume"
        second = deployment.up()
        assert second != container

        with httpx.Client(base_url=deployment.base_url, timeout=30) as client:
            again = client.get(f"/models/{model['id']}")
            assert again.status_code == 200, again.text
            assert again.json()["sha256"] == model["sha256"]
            reupload = _upload_tiny_model(client, tmp_path / "again")
            assert reupload.status_code == 200, "the same model again is the stored one"
            assert reupload.json()["id"] == model["id"]
            kept = client.get(f"/jobs/{job['id']}")
            assert kept.status_code == 200, kept.text
            assert kept.json()["status"] == "succeeded"
            assert kept.json()["result"] == job["result"]
    except BaseException:
        print(f"--- logs of compose project {deployment.project}\n{deployment.logs()}")
        raise
    finally:
        teardown = deployment.down_with_volumes()
    assert teardown.returncode == 0, f"`down -v` failed: {teardown.stderr[-2000:]}"
    assert not deployment.volume_exists(), "`down -v` left the named volume behind"


def test_commented_device_passthrough_is_valid_compose(engine: Engine, tmp_path: Path) -> None:
    """Uncommented, the GPU/NPU block of docker-compose.yml is what compose accepts and means."""
    text = COMPOSE_FILE.read_text()
    text = re.sub(r"^(\s*)# (devices:|group_add:)", r"\1\2", text, flags=re.M)
    text = re.sub(r"^(\s*)#(\s+- )", r"\1\2", text, flags=re.M)
    uncommented = tmp_path / "docker-compose.yml"
    uncommented.write_text(text)
    cmd = [*engine.compose, "--project-directory", str(ROOT), "--file", str(uncommented), "config"]
    config = run(cmd, env={**os.environ, "OVBENCH_RENDER_GID": "4242"}).stdout
    for expected in ("/dev/dri:/dev/dri", "/dev/accel:/dev/accel", "4242"):
        assert expected in config, f"{expected!r} not in:\n{config}"
    assert "127.0.0.1:" in config
