"""Sweeps end to end with the real `ovbench serve`: the worker process runs a search sweep's
points (each job's end advances the sweep from that process), the table and the summary agree
(the best point meets the bounds, the Pareto front is exactly the undominated points), the
CSV downloads; a cancel stops the running point and nothing more runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    Server,
    create_sweep,
    plain_server,
    read_sweep,
    uploaded_model_id,
    wait_for,
)

SWEEP_TIMEOUT_S = 60
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from plain_server(tmp_path_factory, "e2e_sweeps")


@pytest.fixture(scope="module")
def model_id(server: Server, e2e_files: tuple[Path, Path]) -> str:
    return uploaded_model_id(server, e2e_files[0])


def wait_sweep(server: Server, sweep_id: str, timeout_s: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        sweep = read_sweep(server, sweep_id)
        return sweep if sweep["status"] in FINISHED else None

    done: dict[str, Any] = wait_for(finished, timeout_s, f"sweep {sweep_id} to finish")
    return done


def dominates(a: dict[str, Any], b: dict[str, Any], metric: str) -> bool:
    """a is at least as fast and as quick as b, and better in one."""
    fps_a, fps_b, lat_a, lat_b = a["throughput_fps"], b["throughput_fps"], a[metric], b[metric]
    return fps_a >= fps_b and lat_a <= lat_b and (fps_a > fps_b or lat_a < lat_b)


def test_a_search_sweep_runs_in_the_worker_and_its_summary_agrees_with_its_table(
    server: Server, model_id: str
) -> None:
    bound_ms = 1000.0
    sweep = create_sweep(
        server,
        model_id=model_id,
        api="async",
        niter=200,
        grid={"nireq": [1, 2], "nstreams": [1, 2]},
        strategy="search",
        constraints={"latency_p99_ms": bound_ms},
    )
    assert sweep["strategy"] == "search" and sweep["progress"]["points_total"] == 4

    done = wait_sweep(server, sweep["id"], SWEEP_TIMEOUT_S)
    assert done["status"] == "succeeded", done
    assert done["progress"]["points_done"] == 4 and done["progress"]["fraction"] == 1.0
    points = done["points"]
    succeeded = [p for p in points if p["status"] == "succeeded"]
    for point in points:
        assert point["status"] in ("succeeded", "skipped"), point
        if point["status"] == "skipped":
            assert point["skip_reason"] and point["job_id"] is None, point
            continue
        child = server.job(point["job_id"])
        assert child["status"] == "succeeded" and child["sweep_id"] == sweep["id"], child
        assert child["params"]["nireq"] == point["values"]["nireq"]
        assert child["params"]["nstreams"] == point["values"]["nstreams"]
        assert child["result"]["throughput_fps"] == point["throughput_fps"]
        assert point["meets_constraints"] is (point["latency_p99_ms"] <= bound_ms)
    # the first of each nireq chain always runs
    assert {p["values"]["nstreams"] for p in succeeded if p["values"]["nireq"] == 1} == {"1", "2"}
    assert done["progress"]["points_skipped"] == len(points) - len(succeeded)

    summary = done["summary"]
    meeting = [p for p in succeeded if p["meets_constraints"]]
    assert meeting, points
    best = points[summary["best"]]
    assert best["status"] == "succeeded" and best["meets_constraints"] is True
    assert best["latency_p99_ms"] <= bound_ms
    assert best["throughput_fps"] == max(p["throughput_fps"] for p in meeting)
    assert summary["closest"] is None

    metric = summary["pareto_metric"]
    assert metric == "latency_p99_ms"
    front = summary["pareto"]
    assert front and len(set(front)) == len(front)
    assert {p["index"] for p in points if p["pareto"]} == set(front)
    for index in front:
        on_front = points[index]
        assert on_front["status"] == "succeeded", on_front
        assert not any(dominates(other, on_front, metric) for other in succeeded), on_front
    for point in succeeded:  # and every point off the front is beaten by one
        if point["index"] not in front:
            assert any(dominates(other, point, metric) for other in succeeded), point
    assert [points[i][metric] for i in front] == sorted(points[i][metric] for i in front)

    response = server.client.get(f"/sweeps/{sweep['id']}", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["index"]) for r in rows] == [p["index"] for p in points]
    for row, point in zip(rows, points, strict=True):
        assert row["status"] == point["status"]
        assert row["nireq"] == str(point["values"]["nireq"])
        assert row["nstreams"] == point["values"]["nstreams"]
        if point["status"] == "succeeded":
            assert float(row["throughput_fps"]) == point["throughput_fps"]
            assert float(row["latency_p99_ms"]) == point["latency_p99_ms"]
        else:
            assert row["throughput_fps"] == "" and row["skip_reason"] == point["skip_reason"]
        assert row["best"] == str(point["index"] == summary["best"])

    listed = server.client.get("/sweeps", params={"status": "succeeded"})
    assert sweep["id"] in [s["id"] for s in listed.json()]


def test_cancelling_a_sweep_stops_its_running_point_in_the_worker_process(
    server: Server, model_id: str
) -> None:
    duration_s = 20
    sweep = create_sweep(
        server, model_id=model_id, api="async", duration_s=duration_s, grid={"nireq": [1, 2]}
    )
    running_id, waiting_id = (p["job_id"] for p in sweep["points"])
    server.wait_running(running_id)

    response = server.client.post(f"/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 200, response.text
    # the running point ends within seconds, far before its 20 s
    done = wait_sweep(server, sweep["id"], 10)
    assert done["status"] == "cancelled", done
    assert [p["status"] for p in done["points"]] == ["cancelled", "cancelled"]
    assert server.job(running_id)["status"] == "cancelled"
    never = server.job(waiting_id)
    assert never["status"] == "cancelled" and never["started_at"] is None
    again = server.client.post(f"/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "sweep_finished"

    deleted = server.client.delete(f"/sweeps/{sweep['id']}")
    assert deleted.status_code == 204, deleted.text
    assert server.client.get(f"/sweeps/{sweep['id']}").status_code == 404
    assert server.client.get(f"/jobs/{running_id}").status_code == 404
