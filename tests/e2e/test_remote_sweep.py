"""`ovbench sweep --server`: the same sweep run by a real `ovbench serve`, printed like a
local one; --json is the server's SweepRead; options only a local run has are usage errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, plain_server
from tests.e2e.test_remote_cli import _env, ovbench

GRID = ["--grid", "nireq=1,2", "-niter", "50"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from plain_server(tmp_path_factory, "remote_sweep")


def test_a_sweep_on_a_server_prints_what_a_local_sweep_prints(
    server: Server, e2e_files: tuple[Path, Path]
) -> None:
    xml, _ = e2e_files
    done = ovbench("sweep", "--server", server.url, "-m", xml, *GRID, "--p99-max-ms", "1000")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[ INFO ] -api async: nireq is swept" in out
    assert "queued on " + server.url in out
    for index in (0, 1):
        assert f"[ INFO ] Point #{index} ({index + 1} of 2) nireq={index + 1}: " in out, out
    assert "[ INFO ] Best under p99 ≤ 1000" in out, out
    assert "[ INFO ] Sweep wall time: " in out
    [sweep] = server.client.get("/sweeps").json()
    assert sweep["status"] == "succeeded" and sweep["base"]["api"] == "async"
    assert [p["nireq_used"] for p in sweep["points"]] == [1, 2]


def test_json_is_the_servers_sweep_and_server_comes_from_the_environment(
    server: Server, e2e_files: tuple[Path, Path]
) -> None:
    xml, _ = e2e_files
    done = ovbench(
        "sweep", "--server", "-m", xml, *GRID, "--json", env=_env(OVBENCH_SERVER=server.url)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = json.loads(done.stdout)
    assert sweep == server.client.get(f"/sweeps/{sweep['id']}").json()
    assert sweep["summary"]["best"] in (0, 1)


def test_options_only_a_local_run_has_are_usage_errors(
    server: Server, e2e_files: tuple[Path, Path]
) -> None:
    xml, _ = e2e_files
    sweeps_before = len(server.client.get("/sweeps").json())
    done = ovbench("sweep", "--server", server.url, "-m", xml, *GRID, "--guard-sample-s", "0")
    assert done.returncode == 2
    assert "--guard-sample-s is not for a server" in done.stderr, done.stderr
    assert len(server.client.get("/sweeps").json()) == sweeps_before
