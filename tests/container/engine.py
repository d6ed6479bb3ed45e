"""The Docker engine that tests/container run on: commands, the skip/fail rule, image builds.

Needs a Docker engine (DOCKER_HOST or the default socket), `docker-compose` (or `docker
compose`) and a base image with python3 3.11: `ovbench-base:bookworm`, made by
.ci/docker-prepare.sh, or the one named by OVBENCH_TEST_BASE_IMAGE. Without them the tests are
skipped, with the reason; with CI=true they fail instead, since CI must run them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "wheelhouse"
BASE_IMAGE = os.environ.get("OVBENCH_TEST_BASE_IMAGE", "ovbench-base:bookworm")
IN_CI = os.environ.get("CI", "").lower() == "true"
# The classic builder: any engine, no plugin.
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true, so the container test must run, but {reason}", pytrace=False)
    pytest.skip(f"container test not run: {reason}")


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}"
        )
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Engine:
    compose: list[str]  # `docker-compose` or `docker compose`


def probe_engine() -> Engine:
    """The engine and compose to use; skips (fails under CI=true) when one is missing."""
    if shutil.which("docker") is None:
        unavailable("no `docker` command (Debian: apt-get install docker.io)")
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
    try:
        probe = run(
            ["docker", "version", "--format", "{{.Server.Version}}"], timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        unavailable(f"no Docker engine answered within 20 s on {where}")
    if probe.returncode != 0:
        unavailable(
            f"no Docker engine reachable on {where} ({probe.stderr.strip()[-300:]}); "
            "as root, .ci/docker-prepare.sh starts one"
        )
    if shutil.which("docker-compose"):
        compose = ["docker-compose"]
    elif run(["docker", "compose", "version"], check=False).returncode == 0:
        compose = ["docker", "compose"]
    else:
        unavailable("neither `docker-compose` nor `docker compose` is installed")
    if not image_exists(BASE_IMAGE):
        unavailable(
            f"the base image {BASE_IMAGE} is missing: .ci/docker-prepare.sh builds it "
            "(or set OVBENCH_TEST_BASE_IMAGE to an image with python3 3.11 and python3-venv)"
        )
    return Engine(compose=compose)


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def _pip_env() -> dict[str, str]:
    """This environment without pip's machine-wide config: the wheelhouse alone must do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def refresh_wheelhouse() -> None:
    """Rebuild the project's wheel from this tree; fetch dependencies only if some are missing."""
    WHEELHOUSE.mkdir(exist_ok=True)
    for old in WHEELHOUSE.glob("ovbench-*.whl"):
        old.unlink()
    pip = [sys.executable, "-m", "pip"]
    quiet = ["-qq", "--disable-pip-version-check"]
    run(
        [*pip, "wheel", *quiet, "--no-deps", "--wheel-dir", str(WHEELHOUSE), str(ROOT)], timeout=300
    )
    offline = [
        *pip, "install", *quiet, "--dry-run", "--ignore-installed", "--no-index",
        "--find-links", str(WHEELHOUSE), "ovbench",
    ]  # fmt: skip
    if run(offline, env=_pip_env(), check=False, timeout=120).returncode != 0:
        run([*pip, "wheel", *quiet, "--wheel-dir", str(WHEELHOUSE), str(ROOT)], timeout=600)


def build_image(tag: str, context: Path, build_args: dict[str, str]) -> float:
    """`docker build --network none` of `context` as `tag`; returns the seconds it took."""
    started = time.monotonic()
    args = [
        part for name, value in build_args.items() for part in ("--build-arg", f"{name}={value}")
    ]
    run(
        ["docker", "build", "--network", "none", *args, "--tag", tag, str(context)],
        env=BUILD_ENV,
        timeout=600,
    )
    return time.monotonic() - started


def remove_image(tag: str) -> None:
    """Remove `tag` and the build stages' leftovers; never raises."""
    run(["docker", "image", "rm", "--force", tag], check=False)
    run(
        ["docker", "image", "prune", "--force", "--filter", "label=ovbench.stage=build"],
        check=False,
    )


class ComposeProject:
    """One compose project (a unique name) of `compose_file`, published on a free port of
    127.0.0.1 (OVBENCH_PORT), with `env` for the file's variables."""

    def __init__(self, engine: Engine, compose_file: Path, prefix: str, env: dict[str, str]):
        self.project = f"{prefix}{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._cmd = [*engine.compose, "--project-name", self.project, "--file", str(compose_file)]
        self._env = {**os.environ, "OVBENCH_PORT": str(self.port), **env}

    def compose(self, *args: str, timeout: float = 120) -> str:
        return run([*self._cmd, *args], env=self._env, timeout=timeout).stdout

    def down_with_volumes(self) -> subprocess.CompletedProcess[str]:
        """Remove the containers, the network and the named volumes; never raises."""
        cmd = [*self._cmd, "down", "--volumes", "--remove-orphans"]
        try:
            return run(cmd, env=self._env, timeout=180, check=False)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(cmd, -1, "", f"timed out: {exc}")

    def logs(self) -> str:
        proc = run([*self._cmd, "logs", "--no-color", "--tail", "200"], env=self._env, check=False)
        return proc.stdout + proc.stderr
