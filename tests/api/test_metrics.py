"""/metrics: job counters and the duration histogram only go up while the process lives (jobs
counted as they end, from the stored history at the first scrape), the newest result per model
and configuration in base units, build info and the process's own metrics; promtool accepts
the output. Real runs of the tiny CNN by an in-process worker in burst mode."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api import create_app
from app.engine.spec import DeviceInfo
from app.settings import Settings
from app.store import Store
from tests.api.conftest import model_files, read_job, run_queue, running_settings, submit_job_id
from tests.factories import write_dynamic_model

DURATIONS_S = {"CPU": 1.0, "UNKNOWN": 1.0}
NITER = 8  # the tiny CNN: milliseconds per job
PERCENTILES = {"50": "median", "90": "p90", "95": "p95", "99": "p99"}
# What the project's setup installs for promtool (Debian bookworm: 2.42, with promtool).
PROMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return running_settings(tmp_path, DURATIONS_S)


def scrape(client: TestClient) -> Samples:
    """Every sample of one GET /metrics, by (sample name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no {name}{labels} in {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (sample, labels), v in samples.items() if sample == name}


def counted(samples: Samples) -> dict[str, float]:
    """The tally: finished jobs by status, and the histogram's count and +Inf bucket."""
    return {
        **{
            status: value(samples, "ovbench_jobs_finished_total", status=status)
            for status in ("succeeded", "failed", "cancelled")
        },
        "duration_count": value(samples, "ovbench_job_duration_seconds_count"),
        "duration_inf": value(samples, "ovbench_job_duration_seconds_bucket", le="+Inf"),
    }


def upload_dynamic_model(client: TestClient, tmp_path: Path) -> str:
    """A model every job of which fails (`dynamic_shape_unresolved`: no shape given)."""
    response = client.post("/models", files=model_files(write_dynamic_model(tmp_path / "dyn")))
    assert response.status_code == 201, response.text
    model_id: str = response.json()["id"]
    return model_id


def finished_at_in_db(settings: Settings, job_id: str) -> str:
    with sqlite3.connect(settings.data_dir / "ovbench.db") as db:
        (stored,) = db.execute("SELECT finished_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(stored)


# ------------------------------------------------------------------- counters that only go up
def test_deleting_jobs_never_lowers_the_counters_or_the_histogram(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    ids = [submit_job_id(client, model_id=model["id"], niter=NITER) for _ in range(3)]
    assert run_queue(settings, store) == 3
    before = scrape(client)
    assert counted(before) == {
        "succeeded": 3,
        "failed": 0,
        "cancelled": 0,
        "duration_count": 3,
        "duration_inf": 3,
    }
    buckets = series(before, "ovbench_job_duration_seconds_bucket")
    for job_id in ids[:2]:
        assert client.delete(f"/jobs/{job_id}").status_code == 204
    after = scrape(client)
    assert counted(after) == counted(before)
    assert series(after, "ovbench_job_duration_seconds_bucket") == buckets
    assert value(after, "ovbench_job_duration_seconds_sum") == value(
        before, "ovbench_job_duration_seconds_sum"
    )
    assert value(after, "ovbench_jobs", status="succeeded") == 1  # a gauge may go down


def test_a_job_that_ends_after_a_scrape_is_counted_once_at_the_next(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    submit_job_id(client, model_id=model["id"], niter=NITER)
    assert run_queue(settings, store) == 1
    assert counted(scrape(client))["succeeded"] == 1
    submit_job_id(client, model_id=model["id"], niter=NITER)
    assert counted(scrape(client))["succeeded"] == 1  # queued: not ended yet
    assert run_queue(settings, store) == 1
    for _ in range(3):
        now = counted(scrape(client))
        assert (now["succeeded"], now["duration_count"]) == (2, 2)


def test_a_job_committed_after_a_newer_one_was_counted_still_counts_once(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    """A job's finished_at is taken before its commit, and the worker and the API commit in
    either order: a job may appear with a finished_at older than one already counted."""
    newer = submit_job_id(client, model_id=model["id"], niter=NITER)
    assert run_queue(settings, store) == 1
    assert counted(scrape(client))["succeeded"] == 1
    late = submit_job_id(client, model_id=model["id"], niter=NITER)
    assert run_queue(settings, store) == 1
    # as another process would have written it: ended a second before `newer`
    earlier = datetime.fromisoformat(finished_at_in_db(settings, newer)) - timedelta(seconds=1)
    with sqlite3.connect(settings.data_dir / "ovbench.db") as db:
        db.execute(
            "UPDATE jobs SET finished_at = ? WHERE id = ?",
            (earlier.isoformat(sep=" ", timespec="microseconds"), late),
        )
    assert datetime.fromisoformat(finished_at_in_db(settings, late)) == earlier
    for _ in range(2):
        assert counted(scrape(client))["succeeded"] == 2


def test_a_new_app_starts_from_the_stored_history(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any], tmp_path: Path
) -> None:
    kept = submit_job_id(client, model_id=model["id"], niter=NITER)
    deleted = submit_job_id(client, model_id=model["id"], niter=NITER)
    submit_job_id(client, model_id=upload_dynamic_model(client, tmp_path), niter=3)
    assert run_queue(settings, store) == 3
    seen = counted(scrape(client))
    assert (seen["succeeded"], seen["failed"], seen["duration_count"]) == (2, 1, 3)
    assert client.delete(f"/jobs/{deleted}").status_code == 204
    assert counted(scrape(client)) == seen  # this process counted it: it stays counted

    restarted = create_app(settings)  # a new process would count what the store holds now
    with TestClient(restarted) as again:
        history = counted(scrape(again))
        assert (history["succeeded"], history["failed"], history["duration_count"]) == (1, 1, 2)
        assert read_job(again, kept)["status"] == "succeeded"
    restarted.state.store.close()
    assert counted(scrape(client)) == seen


def test_failures_are_counted_by_error_code_and_cancellations_are_not_failures(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any], tmp_path: Path
) -> None:
    dynamic = upload_dynamic_model(client, tmp_path)
    failed = [submit_job_id(client, model_id=dynamic, niter=3) for _ in range(2)]
    cancelled = submit_job_id(client, model_id=model["id"], niter=NITER)
    assert client.post(f"/jobs/{cancelled}/cancel").json()["status"] == "cancelled"
    assert series(scrape(client), "ovbench_job_failures_total") == {}
    assert run_queue(settings, store) == 2
    codes = {read_job(client, job_id)["error"]["code"] for job_id in failed}
    assert codes == {"dynamic_shape_unresolved"}
    samples = scrape(client)
    assert series(samples, "ovbench_job_failures_total") == {
        frozenset({("error_code", "dynamic_shape_unresolved")}): 2.0
    }
    now = counted(samples)
    # the cancelled job never started: it ended, but has no run time for the histogram
    assert (now["failed"], now["cancelled"], now["duration_count"]) == (2, 1, 2)


# ------------------------------------------------------------------- the newest results
def result_labels(job: dict[str, Any], model: dict[str, Any]) -> dict[str, str]:
    config = job["result"]["config"]
    return {
        "model_id": model["id"],
        "model": model["name"],
        "device": "CPU",
        "api": job["resolved_params"]["api"],
        "hint": config["hint"],
        "nireq": str(config["nireq"]),
        "batch": str(config["batch_size"]),
    }


def test_the_last_result_is_in_seconds_per_percentile_with_its_throughput_and_time(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    job_id = submit_job_id(client, model_id=model["id"], api="async", nireq=2, niter=NITER * 4)
    assert run_queue(settings, store) == 1
    job = read_job(client, job_id)
    assert job["status"] == "succeeded", job["error"]
    labels = result_labels(job, model)
    samples = scrape(client)
    latency_ms = job["result"]["latency_ms"]
    for percentile, figure in PERCENTILES.items():
        seconds = value(samples, "ovbench_last_latency_seconds", **labels, percentile=percentile)
        assert seconds == pytest.approx(latency_ms[figure] / 1000, rel=1e-12)
    assert len(series(samples, "ovbench_last_latency_seconds")) == len(PERCENTILES)
    fps = value(samples, "ovbench_last_throughput_fps", **labels)
    assert fps == pytest.approx(job["result"]["throughput_fps"], rel=1e-12)
    finished = datetime.fromisoformat(job["finished_at"]).timestamp()
    stamp = value(samples, "ovbench_last_result_timestamp_seconds", **labels)
    assert stamp == pytest.approx(finished, abs=1e-3)


def test_two_configurations_of_one_model_are_two_series_each_its_newest_result(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    first = submit_job_id(client, model_id=model["id"], api="async", nireq=1, niter=NITER)
    two = submit_job_id(client, model_id=model["id"], api="async", nireq=2, niter=NITER)
    assert run_queue(settings, store) == 2
    newest = submit_job_id(client, model_id=model["id"], api="async", nireq=1, niter=NITER)
    assert run_queue(settings, store) == 1
    jobs = {job_id: read_job(client, job_id) for job_id in (first, two, newest)}
    assert all(job["status"] == "succeeded" for job in jobs.values())
    throughput = series(scrape(client), "ovbench_last_throughput_fps")
    expected = {
        frozenset(result_labels(jobs[job_id], model).items()): jobs[job_id]["result"][
            "throughput_fps"
        ]
        for job_id in (two, newest)  # nireq 1: the newer of its two jobs
    }
    assert {dict(labels)["nireq"] for labels in expected} == {"1", "2"}
    assert throughput == pytest.approx(expected, rel=1e-12)

    assert client.delete(f"/jobs/{newest}").status_code == 204
    throughput = series(scrape(client), "ovbench_last_throughput_fps")
    assert throughput[frozenset(result_labels(jobs[first], model).items())] == pytest.approx(
        jobs[first]["result"]["throughput_fps"], rel=1e-12
    )  # a gauge: the newest result left in the store


# ------------------------------------------------------------------- build and process
def test_build_info_has_the_versions_and_the_process_metrics_are_there(
    client: TestClient,
) -> None:
    version = client.get("/version").json()
    samples = scrape(client)
    assert series(samples, "ovbench_build_info") == {
        frozenset({("version", version["ovbench"]), ("openvino_version", version["openvino"])}): 1.0
    }
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_start_time_seconds") > 0
    assert series(samples, "python_info")


# ------------------------------------------------------------------- promtool
def metrics_of_real_jobs(settings: Settings, tiny_model: Path, tmp_path: Path) -> str:
    """/metrics of an app whose worker ran real jobs: two configurations of the tiny CNN, a
    failed and a cancelled job; with one fleet host registered (its gauges need a host)."""
    app = create_app(settings)
    store: Store = app.state.store
    store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
    try:
        with TestClient(app) as client:
            upload = client.post("/models", files=model_files(tiny_model))
            assert upload.status_code == 201, upload.text
            model_id = upload.json()["id"]
            for nireq in (1, 2):
                submit_job_id(client, model_id=model_id, api="async", nireq=nireq, niter=NITER)
            submit_job_id(client, model_id=upload_dynamic_model(client, tmp_path), niter=3)
            cancelled = submit_job_id(client, model_id=model_id, niter=NITER)
            assert client.post(f"/jobs/{cancelled}/cancel").status_code == 200
            assert run_queue(settings, store) == 3
            store.hosts.register("lab-a", {}, [], {}, "1.0")
            response = client.get("/metrics")
            assert response.status_code == 200, response.text
            return response.text
    finally:
        store.close()


@pytest.fixture
def metrics_text(settings: Settings, tiny_model: Path, tmp_path: Path) -> str:
    return metrics_of_real_jobs(settings, tiny_model, tmp_path)


def test_promtool_accepts_the_metrics(metrics_text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(f"promtool is missing; the setup installs it: {PROMTOOL_INSTALL}")
    assert "ovbench_last_latency_seconds{" in metrics_text  # every family is in the output
    assert "ovbench_job_failures_total{" in metrics_text
    assert "ovbench_host_up{" in metrics_text
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics_text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
