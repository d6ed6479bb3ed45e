"""`ovbench submit`, `jobs`, `show` and `cancel` as subprocesses against real servers: exit
statuses, what is uploaded, --json and --no-wait, tokens, Ctrl-C (SIGINT) while waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import OVBENCH, Server, plain_server, wait_for

TOKEN = "remote-cli-token"
QUICK = ["-d", "CPU", "-api", "sync", "-niter", "20"]
CLI_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from plain_server(tmp_path_factory, "remote_cli")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("remote_cli_tokens")
    srv = Server(base / "data", base / "serve.log", {"OVBENCH_API_TOKENS": TOKEN})
    srv.client.headers["Authorization"] = f"Bearer {TOKEN}"  # for its readiness polls
    yield srv.start()
    srv.close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OVBENCH_SERVER", "OVBENCH_TOKEN")}
    return {**env, **extra}


def ovbench(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OVBENCH), *map(str, args)],
        env=env or _env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def test_submit_reports_like_run_and_uploads_only_what_the_server_lacks(
    server: Server, e2e_files: tuple[Path, Path]
) -> None:
    xml, images = e2e_files
    models_before = len(server.client.get("/models").json())
    datasets_before = len(server.client.get("/datasets").json())
    first = ovbench("submit", "--server", server.url, "-m", xml, "-i", images, *QUICK)
    assert first.returncode == 0, first.stderr
    assert "[ INFO ] Model: uploaded tiny_cnn.xml as model" in first.stdout
    assert "[ INFO ] Inputs: uploaded" in first.stdout
    assert "[ INFO ] Count: 20 iterations" in first.stdout
    assert "[BENCHMARK RESULT] Latency is" in first.stdout
    assert "[BENCHMARK RESULT] Throughput is" in first.stdout.splitlines()[-1]

    second = ovbench("submit", "-m", xml, "-i", images, *QUICK, env=_env(OVBENCH_SERVER=server.url))
    assert second.returncode == 0, second.stderr
    assert "(same sha256)" in second.stdout and "(same files)" in second.stdout
    assert "uploaded" not in second.stdout
    assert len(server.client.get("/models").json()) == models_before + 1
    # The server makes a dataset per upload: one more means the second run sent none.
    assert len(server.client.get("/datasets").json()) == datasets_before + 1


def test_json_and_no_wait(server: Server, e2e_files: tuple[Path, Path]) -> None:
    xml, _ = e2e_files
    done = ovbench("submit", "--server", server.url, "-m", xml, *QUICK, "-nireq", "3", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)  # stdout holds the job's JSON only
    assert job["status"] == "succeeded" and job["params"]["niter"] == 20
    assert job["result"]["throughput_fps"] > 0
    assert "[ INFO ] Job" in done.stderr

    queued = ovbench("submit", "--server", server.url, "-m", xml, *QUICK, "--no-wait")
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    assert server.wait_job(job_id)["status"] == "succeeded"


def test_a_failed_job_exits_1_with_its_error(server: Server, e2e_files: tuple[Path, Path]) -> None:
    xml, _ = e2e_files
    failed = ovbench("submit", "--server", server.url, "-m", xml, *QUICK, "-infer_precision", "f64")
    assert failed.returncode == 1
    assert "[ ERROR ] compile_failed: " in failed.stderr
    assert "[BENCHMARK RESULT]" not in failed.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-c", "kernels.xml"], "-c/--path_to_cldnn_config"),
        (["-l", "libext.so"], "-l/--path_to_extension"),
        (["-cache_dir", "/tmp/c"], "-cache_dir"),
        (["--guard-wait-s", "0"], "--guard-wait-s"),
        (["-niter", "0"], "-niter/--number_iterations"),
    ],
)
def test_options_the_service_does_not_take_are_usage_errors(
    server: Server, e2e_files: tuple[Path, Path], args: list[str], named: str
) -> None:
    jobs_before = server.client.get("/jobs").json()
    refused = ovbench("submit", "--server", server.url, "-m", e2e_files[0], *args)
    assert refused.returncode == 2
    assert named in refused.stderr
    assert server.client.get("/jobs").json() == jobs_before


def test_no_server_or_no_model_file_is_a_usage_error(
    server: Server, e2e_files: tuple[Path, Path], tmp_path: Path
) -> None:
    no_server = ovbench("submit", "-m", e2e_files[0])
    assert no_server.returncode == 2
    assert "--server" in no_server.stderr and "OVBENCH_SERVER" in no_server.stderr
    no_scheme = ovbench("submit", "--server", server.url.removeprefix("http://"), "-m", "m.xml")
    assert no_scheme.returncode == 2 and "must start with http://" in no_scheme.stderr
    missing = ovbench("submit", "--server", server.url, "-m", tmp_path / "nothere.xml")
    assert missing.returncode == 2
    assert "nothere.xml" in missing.stderr


def test_jobs_show_and_cancel(server: Server, e2e_files: tuple[Path, Path]) -> None:
    xml, _ = e2e_files
    env = _env(OVBENCH_SERVER=server.url)
    job_id = ovbench("submit", "-m", xml, *QUICK, "--no-wait", env=env).stdout.strip()
    assert server.wait_job(job_id)["status"] == "succeeded"

    listed = ovbench("jobs", "--status", "succeeded", "--limit", "100", env=env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:2] == ["ID", "STATUS"]
    assert job_id in {row.split()[0] for row in rows}
    assert all(row.split()[1] == "succeeded" for row in rows)

    shown = ovbench("show", job_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "[BENCHMARK RESULT] Throughput is" in shown.stdout
    as_json = json.loads(ovbench("show", job_id, "--json", env=env).stdout)
    assert as_json["id"] == job_id and as_json["status"] == "succeeded"

    finished = ovbench("cancel", job_id, env=env)
    assert finished.returncode == 1 and "job_finished" in finished.stderr
    unknown = ovbench("show", "no-such-job", env=env)
    assert unknown.returncode == 1 and "job_not_found" in unknown.stderr


def test_tokens_from_the_flag_or_the_environment(
    token_server: Server, e2e_files: tuple[Path, Path]
) -> None:
    xml, _ = e2e_files
    refused = ovbench("submit", "--server", token_server.url, "-m", xml, *QUICK)
    assert refused.returncode == 1
    assert "unauthorized" in refused.stderr and "OVBENCH_TOKEN" in refused.stderr
    assert token_server.client.get("/models").json() == []  # nothing went in

    env = _env(OVBENCH_SERVER=token_server.url, OVBENCH_TOKEN=TOKEN)
    queued = ovbench("submit", "-m", xml, *QUICK, "--no-wait", env=env)
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    listed = ovbench("jobs", "--server", token_server.url, "--token", TOKEN)
    assert listed.returncode == 0 and job_id in listed.stdout
    wrong = ovbench("jobs", "--server", token_server.url, "--token", "wrong")
    assert wrong.returncode == 1 and "Invalid bearer token" in wrong.stderr


def test_ctrl_c_without_a_terminal_cancels_the_job_and_exits_130(
    server: Server, e2e_files: tuple[Path, Path]
) -> None:
    xml, _ = e2e_files
    jobs_before = {job["id"] for job in server.client.get("/jobs?limit=1000").json()}
    proc = subprocess.Popen(
        [str(OVBENCH), "submit", "--server", server.url, "-m", str(xml), "-t", "60"],
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def new_running_job() -> str | None:
            for job in server.client.get("/jobs?status=running").json():
                if job["id"] not in jobs_before and job["progress"]["iterations"] > 0:
                    return str(job["id"])
            return None

        job_id = wait_for(new_running_job, 30, "the submitted job to measure")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"Job {job_id} cancelled" in err
    assert server.wait_job(job_id, timeout_s=15)["status"] == "cancelled"
