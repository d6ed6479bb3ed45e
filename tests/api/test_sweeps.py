"""POST/GET /sweeps, cancel, delete, CSV: a grid of run options over one model, run as child
jobs; the table, the best point under the constraints, the closest when none meets them, the
Pareto front; the search strategy's skips; the limits; /metrics and OpenAPI. Real runs of the
tiny model by an in-process worker (burst mode, or a thread while the test cancels)."""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api import create_app
from app.engine.spec import DeviceInfo
from app.settings import Settings
from app.store import Store
from app.worker.worker import Worker
from tests.api.conftest import MAX_UPLOAD_BYTES, assert_error, model_files
from tests.e2e.conftest import wait_for

NITER = 100  # the tiny CNN: a few milliseconds per point
IMPOSSIBLE_MS = 0.0001  # no real run has a p99 of 100 ns
DEADLINE_S = 20.0


def sweep_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Room in the queue, 1 s default runs, no host guard (in-process: set here, not by env)."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "max_queue": 20,
        "default_duration_s": {"CPU": 1.0, "UNKNOWN": 1.0},
        "run_lock_path": tmp_path / "run.lock",  # never the host's lock
        "guard": {"sample_s": 0},
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sweep_settings(tmp_path)


@contextmanager
def service(settings: Settings, tiny_model: Path) -> Iterator[tuple[TestClient, str]]:
    """The app over `settings` (as tests/api/conftest.py's client) with the tiny model
    uploaded: (client, model id)."""
    app = create_app(settings)
    app.state.store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
    try:
        with TestClient(app, raise_server_exceptions=False) as test_client:
            response = test_client.post("/models", files=model_files(tiny_model))
            assert response.status_code == 201, response.text
            yield test_client, response.json()["id"]
    finally:
        app.state.store.close()


def create(client: TestClient, **payload: Any) -> dict[str, Any]:
    response = client.post("/sweeps", json=payload)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/sweeps/{body['id']}"
    return body


def read(client: TestClient, sweep_id: str) -> dict[str, Any]:
    response = client.get(f"/sweeps/{sweep_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def read_job(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def job_count(client: TestClient, **query: Any) -> int:
    response = client.get("/jobs", params=query)
    assert response.status_code == 200, response.text
    return int(response.headers["x-total-count"])


def sweep_count(client: TestClient) -> int:
    response = client.get("/sweeps")
    assert response.status_code == 200, response.text
    return int(response.headers["x-total-count"])


def run_queue(settings: Settings, store: Store) -> int:
    """Run every queued job to its end (the real engine), in this process; the points a
    sweep queues as its jobs end are run too."""
    return Worker(settings, store).run(burst=True)


def run_sweep(
    client: TestClient, settings: Settings, store: Store, **payload: Any
) -> dict[str, Any]:
    """Create a sweep, run the queue, read it back: it succeeded."""
    sweep = create(client, **payload)
    run_queue(settings, store)
    done = read(client, sweep["id"])
    assert done["status"] == "succeeded", done
    return done


def async_sweep(
    client: TestClient,
    settings: Settings,
    store: Store,
    model: dict[str, Any],
    **payload: Any,
) -> dict[str, Any]:
    """`run_sweep` of the uploaded model, async, NITER iterations a point."""
    return run_sweep(
        client, settings, store, model_id=model["id"], api="async", niter=NITER, **payload
    )


def expected_best(points: list[dict[str, Any]]) -> int | None:
    """The rule, from the table: the highest throughput among the succeeded points that meet
    the constraints, the earlier point on a tie."""
    meeting = [p for p in points if p["status"] == "succeeded" and p["meets_constraints"]]
    if not meeting:
        return None
    best: int = max(meeting, key=lambda p: (p["throughput_fps"], -p["index"]))["index"]
    return best


# ---------------------------------------------------------------------------------- grid
def test_a_grid_sweep_runs_every_point_as_a_job_of_the_sweep_with_its_values(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(
        client,
        model_id=model["id"],
        api="async",
        niter=NITER,
        grid={"nstreams": [1, 2], "nireq": [2, 1]},
    )
    expected_values = [
        {"nstreams": "1", "nireq": 1},
        {"nstreams": "1", "nireq": 2},
        {"nstreams": "2", "nireq": 1},
        {"nstreams": "2", "nireq": 2},
    ]
    assert sweep["status"] == "queued"
    assert (sweep["strategy"], sweep["objective"]) == ("grid", "throughput_fps")
    assert sweep["grid"] == {"nstreams": ["1", "2"], "nireq": [1, 2]}  # nireq ascending
    assert sweep["base"]["niter"] == NITER and sweep["base"]["api"] == "async"
    assert "nireq" not in sweep["base"] and "nstreams" not in sweep["base"]
    assert sweep["estimate"]["points"] == 4 and sweep["estimate"]["repeats"] == 1
    assert sweep["estimate"]["measured_s"] is None  # niter only: not known before they run
    assert sweep["progress"] == {
        "points_total": 4,
        "points_done": 0,
        "points_skipped": 0,
        "fraction": 0.0,
    }
    assert [p["values"] for p in sweep["points"]] == expected_values
    assert [p["label"] for p in sweep["points"]] == [
        "nireq=1 nstreams=1",
        "nireq=2 nstreams=1",
        "nireq=1 nstreams=2",
        "nireq=2 nstreams=2",
    ]
    # grid: every point is queued at once
    assert [p["status"] for p in sweep["points"]] == ["queued"] * 4
    job_ids = [p["job_id"] for p in sweep["points"]]
    assert all(job_ids) and len(set(job_ids)) == 4
    assert job_count(client, status="queued") == 4

    assert run_queue(settings, store) == 4

    done = read(client, sweep["id"])
    assert done["status"] == "succeeded"
    assert done["finished_at"] is not None
    assert done["progress"] == {
        "points_total": 4,
        "points_done": 4,
        "points_skipped": 0,
        "fraction": 1.0,
    }
    assert [p["job_id"] for p in done["points"]] == job_ids
    for point in done["points"]:
        values = point["values"]
        assert point["status"] == "succeeded", point
        child = read_job(client, point["job_id"])
        assert child["status"] == "succeeded", child["error"]
        assert child["sweep_id"] == sweep["id"]
        assert child["params"]["nireq"] == values["nireq"]
        assert child["params"]["nstreams"] == values["nstreams"]
        assert child["params"]["niter"] == NITER and child["params"]["api"] == "async"
        config = child["result"]["config"]
        assert config["nireq"] == values["nireq"]
        # the streams asked for reach the device (which may use fewer than asked: with one
        # request in flight OpenVINO compiles one stream)
        assert config["requested"]["NUM_STREAMS"] == values["nstreams"]
        # the table's figures are the child's result's: what the run really used
        assert point["nireq_used"] == config["nireq"] == values["nireq"]
        assert point["nstreams_used"] == config["nstreams"]
        assert point["throughput_fps"] == child["result"]["throughput_fps"] > 0
        assert point["latency_median_ms"] == child["result"]["latency_ms"]["median"]
        assert point["latency_p99_ms"] == child["result"]["latency_ms"]["p99"]
        # no constraints: every point meets them
        assert point["meets_constraints"] is True and point["violations"] == []
    assert job_count(client) == 4  # no job beyond the points'
    assert done["summary"]["best"] == expected_best(done["points"])
    assert done["summary"]["closest"] is None
    assert done["summary"]["message"].startswith("Best: #")
    assert done["timing"]["measured_s"] > 0 and done["timing"]["jobs_s"] > 0


# ------------------------------------------------------------------- constraints, best
def test_the_best_point_is_the_fastest_meeting_the_bound_never_one_breaking_it(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    """A median latency bound between nireq 1's and nireq 8's (from a first sweep): the
    points split, and the best is the fastest of those under it."""
    base = {"model_id": model["id"], "api": "async", "niter": 800, "nstreams": "2"}
    first = run_sweep(client, settings, store, **base, grid={"nireq": [1, 8]})
    medians = [p["latency_median_ms"] for p in first["points"]]
    assert medians[1] > 2 * medians[0], (
        f"precondition: 8 requests in flight wait longer than 1 ({medians})"
    )
    bound = math.sqrt(medians[0] * medians[1])

    done = run_sweep(
        client,
        settings,
        store,
        **base,
        grid={"nireq": [1, 8]},
        constraints={"latency_median_ms": bound},
    )
    assert done["constraints"]["latency_median_ms"] == bound
    points = done["points"]
    for point in points:
        assert point["status"] == "succeeded", point
        meets = point["latency_median_ms"] <= bound
        assert point["meets_constraints"] is meets, (point, bound)
        if meets:
            assert point["violations"] == []
        else:
            assert len(point["violations"]) == 1, point
            assert point["violations"][0].startswith("median latency "), point
    meeting = [p for p in points if p["meets_constraints"]]
    breaking = [p for p in points if not p["meets_constraints"]]
    assert meeting and breaking, f"the bound {bound} ms should split {points}"

    summary = done["summary"]
    assert summary["best"] == expected_best(points)
    best = points[summary["best"]]
    assert best["meets_constraints"] is True and best["latency_median_ms"] <= bound
    fastest = max(points, key=lambda p: p["throughput_fps"])
    if not fastest["meets_constraints"]:
        assert summary["best"] != fastest["index"]
    assert summary["closest"] is None
    assert summary["message"].startswith("Best under median latency ≤ "), summary
    assert summary["pareto_metric"] == "latency_median_ms"


def test_an_impossible_bound_gives_no_best_but_the_closest_point(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    done = async_sweep(
        client,
        settings,
        store,
        model,
        grid={"nireq": [1, 2]},
        constraints={"latency_p99_ms": IMPOSSIBLE_MS},
    )
    points = done["points"]
    for point in points:
        assert point["status"] == "succeeded", point
        assert point["meets_constraints"] is False
        assert [v.split(" ")[0] for v in point["violations"]] == ["p99"], point
    summary = done["summary"]
    assert summary["best"] is None
    # the closest: the smallest relative excess over the one bound, i.e. the lowest p99
    closest = min(points, key=lambda p: (p["latency_p99_ms"], p["index"]))
    assert summary["closest"] == closest["index"]
    assert summary["message"].startswith("No point meets p99 ≤ "), summary
    assert f"#{closest['index']} " in summary["message"]
    # the front is still there: throughput against p99, the bound's latency
    assert summary["pareto_metric"] == "latency_p99_ms"
    assert summary["pareto"], summary


# ------------------------------------------------------------------------------ search
def test_search_stops_raising_nireq_once_throughput_stops_growing(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(
        client,
        model_id=model["id"],
        api="async",
        niter=NITER,
        grid={"nireq": [1, 2, 4]},
        strategy="search",
        min_gain=10,  # +1000%: no real step from 1 to 2 requests gives that
    )
    # search: along nireq, the next point waits for the one before
    assert [p["status"] for p in sweep["points"]] == ["queued", "pending", "pending"]
    assert [p["job_id"] is None for p in sweep["points"]] == [False, True, True]

    assert run_queue(settings, store) == 2

    done = read(client, sweep["id"])
    assert done["status"] == "succeeded"
    first, second, third = done["points"]
    assert (first["status"], second["status"], third["status"]) == (
        "succeeded",
        "succeeded",
        "skipped",
    )
    assert third["job_id"] is None
    assert "stopped growing" in third["skip_reason"], third
    assert "nireq 2" in third["skip_reason"] and "nireq 1" in third["skip_reason"]
    assert done["progress"] == {
        "points_total": 3,
        "points_done": 3,
        "points_skipped": 1,
        "fraction": 1.0,
    }
    assert job_count(client) == 2
    assert {read_job(client, p["job_id"])["params"]["nireq"] for p in (first, second)} == {1, 2}


def test_search_skips_the_rest_of_a_chain_once_a_point_broke_the_latency_bound(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(
        client,
        model_id=model["id"],
        api="async",
        niter=NITER,
        grid={"nireq": [1, 2, 4]},
        strategy="search",
        constraints={"latency_p99_ms": IMPOSSIBLE_MS},
    )
    assert run_queue(settings, store) == 1

    done = read(client, sweep["id"])
    assert done["status"] == "succeeded"
    first, *rest = done["points"]
    assert first["status"] == "succeeded" and first["meets_constraints"] is False
    for point in rest:
        assert point["status"] == "skipped" and point["job_id"] is None, point
        assert "nireq 1 already broke the bound" in point["skip_reason"], point
        assert "p99" in point["skip_reason"]
    assert done["progress"]["points_skipped"] == 2
    assert done["progress"]["fraction"] == 1.0
    assert job_count(client) == 1
    assert done["summary"]["best"] is None and done["summary"]["closest"] == 0


def test_search_skips_a_bigger_batch_once_the_smaller_broke_the_bound(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(
        client,
        model_id=model["id"],
        api="async",
        niter=NITER,
        grid={"batch": [1, 2], "nireq": [1, 2]},
        strategy="search",
        constraints={"latency_p99_ms": IMPOSSIBLE_MS},
    )
    # batch 2 waits for batch 1 at its fewest requests
    assert [p["status"] for p in sweep["points"]] == ["queued", "pending", "pending", "pending"]
    assert run_queue(settings, store) == 1

    done = read(client, sweep["id"])
    ran, more_requests, *bigger_batch = done["points"]
    assert ran["values"] == {"batch": 1, "nireq": 1} and ran["status"] == "succeeded"
    assert more_requests["status"] == "skipped"
    assert "nireq 1 already broke the bound" in more_requests["skip_reason"]
    for point in bigger_batch:
        assert point["values"]["batch"] == 2
        assert point["status"] == "skipped" and point["job_id"] is None, point
        assert "batch 1 already broke the bound" in point["skip_reason"], point
    assert job_count(client) == 1


def test_search_runs_sync_at_one_nireq_only(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(
        client,
        model_id=model["id"],
        niter=NITER,
        grid={"api": ["sync", "async"], "nireq": [1, 2]},
        strategy="search",
    )
    assert run_queue(settings, store) == 3
    done = read(client, sweep["id"])
    by_label = {p["label"]: p for p in done["points"]}
    repeated = by_label["nireq=2 api=sync"]
    assert repeated["status"] == "skipped" and repeated["job_id"] is None
    assert "api sync" in repeated["skip_reason"], repeated
    for label in ("nireq=1 api=sync", "nireq=1 api=async", "nireq=2 api=async"):
        assert by_label[label]["status"] == "succeeded", by_label[label]
    assert by_label["nireq=2 api=async"]["nireq_used"] == 2
    assert job_count(client) == 3


def test_a_latency_objective_picks_the_quickest_point(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    done = async_sweep(
        client,
        settings,
        store,
        model,
        grid={"nireq": [1, 2, 8]},
        objective="latency_median_ms",
    )
    quickest = min(done["points"], key=lambda p: (p["latency_median_ms"], p["index"]))
    assert done["summary"]["best"] == quickest["index"]
    assert done["summary"]["pareto_metric"] == "latency_median_ms"


# ------------------------------------------------------------------------ failed points
def test_a_failed_point_keeps_its_error_and_the_others_still_run(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    """f64 passes the request's checks but no CPU compiles it: the point's job fails."""
    done = run_sweep(
        client,
        settings,
        store,
        model_id=model["id"],
        niter=NITER,
        grid={"infer_precision": ["f64", "f32"]},
    )
    failed, ran = done["points"]
    assert failed["status"] == "failed" and "f64" in failed["error"], failed
    assert failed["meets_constraints"] is None and failed["throughput_fps"] is None
    assert read_job(client, failed["job_id"])["status"] == "failed"
    assert ran["status"] == "succeeded" and ran["error"] is None
    assert done["summary"]["best"] == ran["index"]
    assert done["progress"]["fraction"] == 1.0


def test_a_sweep_whose_every_point_failed_is_failed(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(client, model_id=model["id"], niter=NITER, grid={"infer_precision": ["f64"]})
    assert run_queue(settings, store) == 1
    done = read(client, sweep["id"])
    assert done["status"] == "failed" and done["finished_at"] is not None
    assert done["points"][0]["status"] == "failed" and done["points"][0]["error"]
    assert done["summary"]["best"] is None and done["summary"]["closest"] is None
    assert done["summary"]["message"].startswith("No point succeeded")


# ------------------------------------------------------------------------------ cancel
def test_cancel_before_any_point_ran_cancels_every_point_and_queues_nothing_more(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(
        client,
        model_id=model["id"],
        api="async",
        niter=NITER,
        grid={"nstreams": [1, 2], "nireq": [1, 2]},
        strategy="search",
    )
    # the first point of each nireq chain is queued, the others wait
    assert [p["status"] for p in sweep["points"]] == ["queued", "pending", "queued", "pending"]
    queued_ids = [p["job_id"] for p in sweep["points"] if p["job_id"]]

    response = client.post(f"/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert [p["status"] for p in cancelled["points"]] == ["cancelled"] * 4
    assert cancelled["progress"]["points_done"] == 4
    assert job_count(client, status="queued") == 0
    assert job_count(client) == 2
    for job_id in queued_ids:
        child = read_job(client, job_id)
        assert child["status"] == "cancelled" and child["started_at"] is None, child

    again = client.post(f"/sweeps/{sweep['id']}/cancel")
    error = assert_error(again, 409, "sweep_finished")
    assert error["details"] == {"status": "cancelled"}

    assert run_queue(settings, store) == 0  # nothing left to run, nothing queued later
    after = read(client, sweep["id"])
    assert after["status"] == "cancelled"
    assert [p["status"] for p in after["points"]] == ["cancelled"] * 4
    assert job_count(client) == 2
    assert_error(client.post("/sweeps/nope/cancel"), 404, "sweep_not_found")


def test_a_cancelled_sweeps_message_does_not_point_to_errors_no_point_has(
    client: TestClient, model: dict[str, Any]
) -> None:
    sweep = create(client, model_id=model["id"], niter=NITER, grid={"nireq": [1, 2]})
    cancelled = client.post(f"/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert [p["error"] for p in cancelled["points"]] == [None, None]
    summary = cancelled["summary"]
    assert summary["best"] is None and summary["closest"] is None
    # no point failed: the finding is that the sweep was cancelled, not "see the errors"
    assert "error" not in summary["message"], summary["message"]


@pytest.fixture
def worker_thread(settings: Settings, store: Store) -> Iterator[Worker]:
    """The real worker polling the queue in a thread, stopped at teardown."""
    worker = Worker(settings, store)
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    yield worker
    worker.stop_event.set()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the worker did not stop"


def test_cancel_while_a_point_runs_stops_it_and_the_rest_never_run(
    client: TestClient, model: dict[str, Any], worker_thread: Worker
) -> None:
    duration_s = 10
    sweep = create(
        client,
        model_id=model["id"],
        api="async",
        duration_s=duration_s,
        grid={"nireq": [1, 2]},
    )
    running_id = sweep["points"][0]["job_id"]
    waiting_id = sweep["points"][1]["job_id"]
    wait_for(
        lambda: read_job(client, running_id)["status"] == "running",
        DEADLINE_S,
        "the first point to run",
    )
    assert read(client, sweep["id"])["status"] == "running"

    asked = time.monotonic()
    response = client.post(f"/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] != "succeeded"
    # well before the running point's 10 s would have ended by itself
    done = wait_for(
        lambda: (body := read(client, sweep["id"]))["status"] == "cancelled" and body,
        duration_s - 4,
        "the sweep to be cancelled",
    )
    assert time.monotonic() - asked < duration_s - 4
    assert [p["status"] for p in done["points"]] == ["cancelled", "cancelled"]
    ran = read_job(client, running_id)
    assert ran["status"] == "cancelled" and ran["started_at"] is not None
    elapsed = datetime.fromisoformat(ran["finished_at"]) - datetime.fromisoformat(ran["started_at"])
    assert elapsed.total_seconds() < duration_s
    never = read_job(client, waiting_id)
    assert never["status"] == "cancelled" and never["started_at"] is None
    assert job_count(client) == 2
    assert_error(client.post(f"/sweeps/{sweep['id']}/cancel"), 409, "sweep_finished")


# ------------------------------------------------------------------------------ limits
def test_a_grid_over_the_points_limit_is_422_and_nothing_is_stored(
    tmp_path: Path, tiny_model: Path
) -> None:
    with service(sweep_settings(tmp_path, sweep_max_points=3), tiny_model) as (client, model_id):
        response = client.post(
            "/sweeps",
            json={
                "model_id": model_id,
                "niter": NITER,
                "grid": {"nstreams": [1, 2], "nireq": [1, 2]},
            },
        )
        error = assert_error(response, 422, "sweep_too_large")
        assert "4 points" in error["message"] and "limit of 3" in error["message"], error
        assert error["details"] == {"points": 4, "max_points": 3}
        assert client.get("/sweeps").json() == [] and sweep_count(client) == 0
        assert job_count(client) == 0
        # at the limit: accepted
        at_limit = create(client, model_id=model_id, niter=NITER, grid={"nireq": [1, 2, 4]})
        assert at_limit["progress"]["points_total"] == 3


def test_a_sweep_estimated_over_the_hours_limit_is_422_with_its_estimate(
    tmp_path: Path, tiny_model: Path
) -> None:
    max_hours = 0.001  # 3.6 s
    settings = sweep_settings(tmp_path, sweep_max_hours=max_hours)
    with service(settings, tiny_model) as (client, model_id):
        base = {"model_id": model_id, "api": "async", "grid": {"nireq": [1, 2]}}
        for extra, estimated_s in (
            ({"duration_s": 2}, 4.0),
            ({"duration_s": 1, "repeats": 2}, 4.0),
        ):
            response = client.post("/sweeps", json={**base, **extra})
            error = assert_error(response, 422, "sweep_too_large")
            assert error["details"] == {
                "points": 2,
                "estimated_s": estimated_s,
                "max_hours": max_hours,
            }, extra
            assert "OVBENCH_SWEEP_MAX_HOURS" in error["message"]
        assert sweep_count(client) == 0 and job_count(client) == 0

        within = create(client, **base, duration_s=1)
        assert within["estimate"]["measured_s"] == 2.0  # 2 points x 1 s x 1 repeat
        # neither niter nor duration_s: the device's default duration (1 s here)
        default = create(client, **base)
        assert default["estimate"]["measured_s"] == 2.0
        # niter only: no estimate, so no limit to refuse it by
        counted = create(client, **base, niter=NITER)
        assert counted["estimate"]["measured_s"] is None
        assert "niter" in counted["estimate"]["note"]
        assert sweep_count(client) == 3


def test_a_sweep_the_queue_cannot_take_is_503_and_stores_nothing(
    tmp_path: Path, tiny_model: Path
) -> None:
    with service(sweep_settings(tmp_path, max_queue=3), tiny_model) as (client, model_id):
        grid = {"nstreams": [1, 2], "nireq": [1, 2]}
        response = client.post("/sweeps", json={"model_id": model_id, "niter": NITER, "grid": grid})
        error = assert_error(response, 503, "queue_full")
        assert error["details"] == {"max_queue": 3, "queued": 0, "sweep_jobs": 4}
        assert sweep_count(client) == 0 and job_count(client) == 0
        # search queues only the first point of each nireq chain: 2 jobs fit
        sweep = create(client, model_id=model_id, niter=NITER, grid=grid, strategy="search")
        assert job_count(client, status="queued") == 2
        assert [p["status"] for p in sweep["points"]].count("pending") == 2


# -------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("extra", "code", "in_message"),
    [
        ({"grid": {"nireqs": [1, 2]}}, "validation_error", "nireqs"),
        ({"grid": {"nireq": [0, 1]}}, "validation_error", "Grid point nireq=0"),
        ({"grid": {"batch": [1, 0]}}, "validation_error", "Grid point batch=0"),
        ({"nireq": 2, "grid": {"nireq": [1, 2]}}, "conflicting_fields", "nireq"),
        ({"grid": {}}, "empty_grid", "empty"),
        ({"grid": {"nireq": []}}, "validation_error", "nireq"),
        ({"grid": {"nireq": [2, 2]}}, "duplicate_grid_values", "nireq=2"),
        ({"grid": {"nstreams": [2, "2"]}}, "duplicate_grid_values", "nstreams=2"),
        ({"grid": {"nireq": [2, "2"]}}, "duplicate_grid_values", "nireq=2"),
        ({"grid": {"hint": ["fastest"]}}, "validation_error", "hint"),
        ({"strategy": "random", "grid": {"nireq": [1]}}, "validation_error", "strategy"),
        (
            {"constraints": {"latency_p99_ms": 0}, "grid": {"nireq": [1]}},
            "validation_error",
            "latency_p99_ms",
        ),
        ({"constraints": {"p99": 20}, "grid": {"nireq": [1]}}, "validation_error", "p99"),
        ({}, "validation_error", "grid"),
    ],
)
def test_an_invalid_sweep_is_422_naming_the_problem_and_stores_nothing(
    client: TestClient,
    model: dict[str, Any],
    extra: dict[str, Any],
    code: str,
    in_message: str,
) -> None:
    response = client.post("/sweeps", json={"model_id": model["id"], "niter": NITER, **extra})
    error = assert_error(response, 422, code)
    assert in_message in error["message"], error
    assert sweep_count(client) == 0 and job_count(client) == 0


def test_sweeping_nireq_runs_async_unless_api_sync_is_asked_for(
    client: TestClient, model: dict[str, Any]
) -> None:
    sweep = create(client, model_id=model["id"], niter=NITER, grid={"nireq": [1, 2]})
    assert sweep["base"]["api"] == "async"
    for point in sweep["points"]:
        child = read_job(client, point["job_id"])
        assert child["params"]["api"] == "async"
        assert child["params"]["nireq"] == point["values"]["nireq"]
    response = client.post(
        "/sweeps",
        json={"model_id": model["id"], "niter": NITER, "api": "sync", "grid": {"nireq": [1, 2]}},
    )
    error = assert_error(response, 422, "conflicting_fields")
    assert "sync" in error["message"] and "nireq" in error["message"], error
    assert sweep_count(client) == 1


def test_a_bad_grid_value_names_the_point_and_the_grid_axis(
    client: TestClient, model: dict[str, Any]
) -> None:
    response = client.post(
        "/sweeps",
        json={"model_id": model["id"], "niter": NITER, "grid": {"nstreams": [1], "nireq": [1, 0]}},
    )
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("Grid point nireq=0 nstreams=1: "), error
    assert [e["loc"] for e in error["details"]] == [["body", "grid", "nireq"]], error


def test_the_same_option_in_the_base_and_the_grid_is_named(
    client: TestClient, model: dict[str, Any]
) -> None:
    response = client.post(
        "/sweeps",
        json={
            "model_id": model["id"],
            "niter": NITER,
            "nireq": 2,
            "api": "async",
            "grid": {"nireq": [1, 2], "api": ["sync", "async"]},
        },
    )
    error = assert_error(response, 422, "conflicting_fields")
    assert error["details"] == {"fields": ["api", "nireq"]}


def test_an_unknown_model_or_dataset_is_404(client: TestClient, model: dict[str, Any]) -> None:
    grid = {"nireq": [1, 2]}
    assert_error(
        client.post("/sweeps", json={"model_id": "nope", "niter": NITER, "grid": grid}),
        404,
        "model_not_found",
    )
    assert_error(
        client.post(
            "/sweeps",
            json={"model_id": model["id"], "dataset_id": "nope", "niter": NITER, "grid": grid},
        ),
        404,
        "dataset_not_found",
    )
    assert sweep_count(client) == 0 and job_count(client) == 0
    assert_error(client.get("/sweeps/nope"), 404, "sweep_not_found")


def test_a_sweep_is_sent_as_json(client: TestClient, model: dict[str, Any]) -> None:
    response = client.post(
        "/sweeps",
        data={"model_id": model["id"], "grid": '{"nireq": [1]}'},
    )
    assert_error(response, 415, "unsupported_media_type")
    assert sweep_count(client) == 0


# --------------------------------------------------------------------------------- CSV
def test_the_csv_has_a_row_per_point_with_the_swept_axes_and_full_precision_figures(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    done = async_sweep(
        client,
        settings,
        store,
        model,
        grid={"nstreams": [1, 2], "nireq": [1, 2]},
        constraints={"latency_p99_ms": 1000},
    )
    response = client.get(f"/sweeps/{done['id']}", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="sweep-{done["id"]}.csv"' in response.headers["content-disposition"]

    reader = csv.DictReader(io.StringIO(response.text))
    header = reader.fieldnames or []
    for column in ("index", "label", "status", "nstreams", "nireq", "throughput_fps"):
        assert column in header, header
    for column in ("latency_median_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"):
        assert column in header, header
    for unswept in ("batch", "hint", "device", "api", "infer_precision"):
        assert unswept not in header, header
    rows = list(reader)
    assert len(rows) == len(done["points"]) == 4
    for row, point in zip(rows, done["points"], strict=True):
        assert int(row["index"]) == point["index"]
        assert row["label"] == point["label"] and row["status"] == "succeeded"
        assert row["nstreams"] == str(point["values"]["nstreams"])
        assert int(row["nireq"]) == point["values"]["nireq"]
        assert row["job_id"] == point["job_id"]
        for metric in (
            "throughput_fps",
            "latency_median_ms",
            "latency_p90_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "measured_s",
            "setup_s",
        ):
            assert float(row[metric]) == point[metric], (metric, row[metric], point[metric])
        assert row["meets_constraints"] == "True"
        assert row["best"] == str(point["index"] == done["summary"]["best"])
        assert row["pareto"] == str(point["pareto"])
    assert sum(row["best"] == "True" for row in rows) == 1


# ------------------------------------------------------------------------------ delete
def test_delete_refuses_an_active_sweep_then_removes_it_with_its_jobs_only(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    sweep = create(client, model_id=model["id"], niter=NITER, grid={"nireq": [1, 2]})
    child_ids = [p["job_id"] for p in sweep["points"]]
    error = assert_error(client.delete(f"/sweeps/{sweep['id']}"), 409, "sweep_not_finished")
    assert error["details"] == {"status": "queued"}
    error = assert_error(client.delete(f"/jobs/{child_ids[0]}"), 409, "job_in_sweep")
    assert error["details"] == {"sweep_id": sweep["id"]}
    plain = client.post("/jobs", json={"model_id": model["id"], "niter": NITER})
    assert plain.status_code == 202, plain.text
    plain_id = plain.json()["id"]

    assert run_queue(settings, store) == 3
    assert read(client, sweep["id"])["status"] == "succeeded"
    for job_id in child_ids:  # finished, still a row of the sweep's table
        assert read_job(client, job_id)["status"] == "succeeded"
        assert_error(client.delete(f"/jobs/{job_id}"), 409, "job_in_sweep")

    response = client.delete(f"/sweeps/{sweep['id']}")
    assert response.status_code == 204, response.text
    assert_error(client.get(f"/sweeps/{sweep['id']}"), 404, "sweep_not_found")
    for job_id in child_ids:
        assert_error(client.get(f"/jobs/{job_id}"), 404, "job_not_found")
    assert read_job(client, plain_id)["status"] == "succeeded"  # not the sweep's: kept
    assert job_count(client) == 1 and sweep_count(client) == 0
    assert_error(client.delete(f"/sweeps/{sweep['id']}"), 404, "sweep_not_found")


# ------------------------------------------------------------------- list and /metrics
def test_sweeps_list_newest_first_with_a_total_and_filter_by_status(
    client: TestClient, model: dict[str, Any]
) -> None:
    ids = [
        create(client, model_id=model["id"], niter=NITER, grid={"nireq": [1, 2]})["id"]
        for _ in range(3)
    ]
    oldest, middle, newest = ids
    assert client.post(f"/sweeps/{middle}/cancel").status_code == 200

    def listed(**query: Any) -> tuple[list[str], int]:
        response = client.get("/sweeps", params=query)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()], int(response.headers["x-total-count"])

    assert listed() == ([newest, middle, oldest], 3)
    assert listed(status="cancelled") == ([middle], 1)
    assert listed(status="queued") == ([newest, oldest], 2)
    assert listed(status="succeeded") == ([], 0)
    assert listed(limit=1) == ([newest], 3)
    assert listed(limit=1, offset=1) == ([middle], 3)
    body = client.get("/sweeps").json()
    assert [len(s["points"]) for s in body] == [2, 2, 2]  # each a full SweepRead
    assert_error(client.get("/sweeps", params={"status": "done"}), 422)
    assert_error(client.get("/sweeps", params={"limit": 0}), 422)


def sweep_gauge(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        if family.name == "ovbench_sweeps":
            return {s.labels["status"]: s.value for s in family.samples}
    raise AssertionError(f"no ovbench_sweeps in /metrics:\n{response.text}")


def test_metrics_count_the_sweeps_by_status(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    zero = dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled"), 0.0)
    assert sweep_gauge(client) == zero
    payload = {"model_id": model["id"], "niter": NITER, "grid": {"nireq": [1, 2]}}
    first = create(client, **payload)
    create(client, **payload)
    assert sweep_gauge(client) == {**zero, "queued": 2.0}
    run_queue(settings, store)
    cancelled = create(client, **payload)
    assert client.post(f"/sweeps/{cancelled['id']}/cancel").status_code == 200
    assert sweep_gauge(client) == {**zero, "succeeded": 2.0, "cancelled": 1.0}
    assert client.delete(f"/sweeps/{first['id']}").status_code == 204
    assert sweep_gauge(client) == {**zero, "succeeded": 1.0, "cancelled": 1.0}


# ----------------------------------------------------------------------------- OpenAPI
def test_openapi_documents_sweeps_with_typed_schemas(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "SweepCreate" in components and "SweepRead" in components
    create_body = schema["paths"]["/sweeps"]["post"]["requestBody"]["content"]
    assert create_body["application/json"]["schema"] == {"$ref": "#/components/schemas/SweepCreate"}
    sweep_create = components["SweepCreate"]["properties"]
    for field in ("model_id", "niter", "duration_s", "grid", "strategy", "objective"):
        assert field in sweep_create, field
    assert "constraints" in sweep_create and "min_gain" in sweep_create
    grid_ref = sweep_create["grid"].get("$ref") or sweep_create["grid"]["allOf"][0]["$ref"]
    grid = components[grid_ref.rsplit("/", 1)[1]]
    assert {"nireq", "nstreams", "batch", "hint", "device", "api"} <= set(grid["properties"])

    read_schema = components["SweepRead"]["properties"]
    assert read_schema["points"]["items"] == {"$ref": "#/components/schemas/PointRead"}
    point = components["PointRead"]["properties"]
    types = {t.get("type") for t in point["throughput_fps"]["anyOf"]}
    assert types == {"number", "null"}
    assert point["index"]["type"] == "integer"
    assert "latency_p99_ms" in point and "meets_constraints" in point
    summary_ref = read_schema["summary"]["$ref"]
    summary = components[summary_ref.rsplit("/", 1)[1]]["properties"]
    assert {"best", "closest", "message", "pareto", "pareto_metric"} <= set(summary)
    get_sweep = schema["paths"]["/sweeps/{sweep_id}"]["get"]
    assert "text/csv" in get_sweep["responses"]["200"]["content"]
    assert "/sweeps/{sweep_id}/cancel" in schema["paths"]
    assert "delete" in schema["paths"]["/sweeps/{sweep_id}"]
