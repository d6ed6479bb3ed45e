"""Results you can trust, end to end with the real `ovbench serve`: a busy host is named in
the verdict, the host guard waits for a quiet host (and says when it ran anyway),
OVBENCH_SERVICE_CPUS keeps the service off the benchmark's CPUs, and `ovbench compare`
compares two jobs on a server."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cpu_split import cpu_list
from app.engine.spec import BenchmarkResult
from tests.e2e.conftest import (
    OVBENCH,
    RUN_LOCK_ENV,
    Server,
    free_port,
    group_alive,
    own_run_lock,
    plain_server,
    run_until_exit,
    uploaded_model_id,
    wait_for,
)

JOB_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from plain_server(tmp_path_factory, "e2e_trust")


@pytest.fixture(scope="module")
def model_id(server: Server, e2e_files: tuple[Path, Path]) -> str:
    return uploaded_model_id(server, e2e_files[0])


@pytest.fixture
def busy_cpu() -> Iterator[subprocess.Popen[bytes]]:
    """Another process spinning on one CPU for as long as the test runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_for(lambda: _cpu_ticks(spinner.pid) > 0, 10, "the busy process to use the CPU")
        yield spinner
    finally:
        spinner.kill()
        spinner.wait(timeout=10)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _two_cpus() -> list[int]:
    """The CPUs this process may use; fails (never skips) with fewer than 2."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        pytest.fail(
            f"OVBENCH_SERVICE_CPUS needs 2 CPUs or more to split (one for the service, the rest "
            f"for the benchmark), but this process may use only {available}: run the suite on "
            "a machine (or with an affinity) of 2 CPUs or more",
            pytrace=False,
        )
    return available


def _allowed(status_path: str) -> frozenset[int]:
    """Cpus_allowed_list of a /proc/.../status file, as a set."""
    with open(status_path) as status:
        for line in status:
            if line.startswith("Cpus_allowed_list:"):
                text = line.split(":", 1)[1].strip()
                cpus: set[int] = set()
                for part in text.split(","):
                    low, _, high = part.partition("-")
                    cpus.update(range(int(low), int(high or low) + 1))
                return frozenset(cpus)
    raise AssertionError(f"no Cpus_allowed_list in {status_path}")


def _finished(server: Server, job_id: str) -> dict[str, Any]:
    job = server.wait_job(job_id, timeout_s=JOB_TIMEOUT_S)
    assert job["status"] == "succeeded", job["error"]
    return job


def test_a_busy_host_makes_the_verdict_not_stable_naming_other_processes(
    server: Server, model_id: str, busy_cpu: subprocess.Popen[bytes]
) -> None:
    job = server.submit(model_id=model_id, repeats=3, duration_s=1)
    result = BenchmarkResult.model_validate(_finished(server, job["id"])["result"])
    assert len(result.runs) == 3
    for run in result.runs:  # the measurement saw the spinner in every run
        assert run.cpu_usage is not None and run.cpu_usage.measured, run.cpu_usage
        assert run.cpu_usage.other_fraction is not None
        assert run.cpu_usage.other_fraction > 0.10, run.cpu_usage
    stability = result.stability
    assert stability is not None and stability.verdict != "stable", stability
    named = [r for r in stability.reasons if r.startswith("Other processes used")]
    assert named, stability.reasons
    assert "of the host's CPUs during runs 1, 2 and 3 of 3 (above 10%)" in named[0], named
    assert result.host_guard is not None and result.host_guard.sampled_s == 0  # guard off


def test_the_guard_waits_for_a_quiet_host_then_runs_anyway_and_says_so(
    make_server: Callable[..., Server],
    e2e_files: tuple[Path, Path],
    busy_cpu: subprocess.Popen[bytes],
) -> None:
    guarded = make_server(
        env={
            "OVBENCH_GUARD__SAMPLE_S": "0.5",
            "OVBENCH_GUARD__BUSY_FRACTION": "0.2",
            "OVBENCH_GUARD__WAIT_S": "1",
        }
    )
    model = guarded.upload_model(e2e_files[0]).json()["id"]
    job = guarded.submit(model_id=model, niter=20)
    result = BenchmarkResult.model_validate(_finished(guarded, job["id"])["result"])
    guard = result.host_guard
    assert guard is not None
    assert (guard.rules.sample_s, guard.rules.busy_fraction, guard.rules.wait_s) == (0.5, 0.2, 1)
    assert guard.ran_busy is True
    assert guard.waited_s >= 1.0, guard
    assert guard.sampled_s >= guard.waited_s + 0.5, guard
    assert guard.other_fraction is not None and guard.other_fraction > 0.2, guard
    assert guard.message is not None and "then ran anyway" in guard.message
    assert guard.message in result.warnings
    assert result.stability is not None and result.stability.verdict != "stable"
    assert any(r.startswith("The host was still busy") for r in result.stability.reasons)


def test_service_cpus_keep_the_service_off_the_benchmarks_cpus(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    available = _two_cpus()
    service, run = available[:1], available[1:]
    split = make_server(env={"OVBENCH_SERVICE_CPUS": str(service[0])})
    assert split.process is not None
    pid = split.process.pid
    threads = sorted(os.listdir(f"/proc/{pid}/task"))
    assert len(threads) > 1  # uvicorn's, the supervisor's, the retention sweep's ...
    for tid in threads:  # the API process and every thread it started
        assert _allowed(f"/proc/{pid}/task/{tid}/status") == frozenset(service), tid
    worker = split.worker_pid()
    assert _allowed(f"/proc/{worker}/status") == frozenset(run)  # its run thread
    log = split.log_path.read_text()
    assert (
        f"CPU split: service on CPUs {service[0]}, benchmarks on CPUs {cpu_list(frozenset(run))}"
        in log
    )

    model = split.upload_model(e2e_files[0]).json()["id"]
    job = split.submit(model_id=model, niter=30)
    config = BenchmarkResult.model_validate(_finished(split, job["id"])["result"]).config
    assert config.cpus == run
    # read back from the compiled model: OpenVINO sized itself to the run's CPUs
    assert config.properties["INFERENCE_NUM_THREADS"] == str(config.nthreads)
    if len(run) == 1:
        assert config.nthreads == 1
    else:
        assert config.nthreads is not None and 1 <= config.nthreads <= len(run)


def test_service_cpus_that_cannot_work_stop_serve_naming_the_setting(tmp_path: Path) -> None:
    available = _two_cpus()
    unknown = next(cpu for cpu in itertools.count(7) if cpu not in available)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVBENCH_")}
    data_dir = tmp_path / "data"
    env[RUN_LOCK_ENV] = str(own_run_lock(data_dir))
    for value, says in (
        (cpu_list(frozenset(available)), "leaves no CPU for the benchmark"),
        (str(unknown), f"names CPUs [{unknown}] this process may not use"),
        ("0-", "is not a CPU number or range"),
    ):
        proc, out = run_until_exit(
            [str(OVBENCH), "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
            {**env, "OVBENCH_SERVICE_CPUS": value},
        )
        assert proc.returncode == 1, out
        assert "OVBENCH_SERVICE_CPUS" in out, out  # which setting to fix
        assert says in out, out
        assert f"ERROR [serve {proc.pid}] app.serve:" in out, out
        assert "Traceback" not in out and "serving on" not in out, out
        assert not group_alive(proc.pid)  # no worker left behind
        assert not data_dir.exists()  # refused before touching anything


def test_ovbench_compare_compares_two_jobs_on_the_server(server: Server, model_id: str) -> None:
    baseline = server.submit(model_id=model_id, niter=20)
    candidate = server.submit(model_id=model_id, niter=40)
    for job in (baseline, candidate):
        _finished(server, job["id"])
    ids = [baseline["id"], candidate["id"]]
    answer = server.client.get("/compare", params={"baseline": ids[0], "candidate": ids[1]}).json()
    env = {k: v for k, v in os.environ.items() if k not in ("OVBENCH_SERVER", "OVBENCH_TOKEN")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(OVBENCH), "compare", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    shown = cli(*ids, "--server", server.url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[-1] == f"[BENCHMARK RESULT] Verdict: {answer['verdict']}", shown.stdout
    assert f"candidate {ids[1]} against baseline {ids[0]}" in lines[0]
    assert "[ INFO ] Differs: job.resolved.niter: 20 -> 40" in lines
    for metric in answer["metrics"]:
        assert any(line.startswith(metric["metric"]) for line in lines), metric["metric"]

    as_json = cli(*ids, "--server", server.url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == answer

    unknown = cli(ids[0], "no-such-job", "--server", server.url)
    assert unknown.returncode == 2
    assert "answered 404" in unknown.stderr and "no-such-job" in unknown.stderr
