"""GET /compare: two succeeded jobs' results, candidate against baseline, per metric, with
intervals, verdicts and what differs; 409 for a job without a result to trust, 404, 422;
served from the read cache with an ETag. Real runs of the tiny model by an in-process worker
in burst mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.engine.compare import Comparison
from app.settings import Settings
from app.store import Store
from tests.api.conftest import assert_error, model_files, run_queue, running_settings, submit_job_id
from tests.factories import write_dynamic_model

METRICS = [
    "throughput_fps",
    "latency_median_ms",
    "latency_p99_ms",
    "first_inference_ms",
    "compile_ms",
]
BETTER = {
    "throughput_fps": "higher",
    "latency_median_ms": "lower",
    "latency_p99_ms": "lower",
    "first_inference_ms": "lower",
    "compile_ms": "lower",
}
VERDICTS = ("improved", "regressed", "no_change")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return running_settings(tmp_path, {"CPU": 1.0, "UNKNOWN": 1.0})


def succeeded(client: TestClient, *job_ids: str) -> None:
    for job_id in job_ids:
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job["error"]


def compare(client: TestClient, baseline: str, candidate: str, **query: Any) -> Any:
    return client.get("/compare", params={"baseline": baseline, "candidate": candidate, **query})


def test_two_succeeded_jobs_compare_per_metric_with_what_differs(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    baseline = submit_job_id(client, model_id=model["id"], niter=50)
    candidate = submit_job_id(client, model_id=model["id"], niter=100)
    assert run_queue(settings, store) == 2
    succeeded(client, baseline, candidate)
    response = compare(client, baseline, candidate)
    assert response.status_code == 200, response.text
    body = response.json()
    assert Comparison.model_validate(body).model_dump(mode="json") == body
    assert (body["baseline_id"], body["candidate_id"]) == (baseline, candidate)
    assert body["threshold"] == 0.02 and body["verdict"] in VERDICTS

    metrics = {m["metric"]: m for m in body["metrics"]}
    assert list(metrics) == METRICS
    results = {
        side: client.get(f"/jobs/{job_id}").json()["result"]
        for side, job_id in (("baseline", baseline), ("candidate", candidate))
    }
    for name, metric in metrics.items():
        assert metric["better"] == BETTER[name]
        assert metric["verdict"] in VERDICTS
        assert metric["baseline"] > 0 and metric["candidate"] > 0
        assert metric["ratio"] == pytest.approx(metric["candidate"] / metric["baseline"])
        # one run each, a fraction of a second: no interval, the point ratio alone says
        assert metric["ci_low"] is None and metric["ci_high"] is None, metric
        assert metric["note"] == "No interval backs this verdict: the point ratio alone."
    for side, result in results.items():
        assert metrics["throughput_fps"][side] == result["throughput_fps"]
        assert metrics["latency_median_ms"][side] == result["latency_ms"]["median"]
        assert metrics["compile_ms"][side] == result["compile_ms"]
    # the overall verdict: throughput's, as nothing has an interval
    assert body["verdict"] == metrics["throughput_fps"]["verdict"]

    differences = {d["field"]: (d["baseline"], d["candidate"]) for d in body["differences"]}
    assert differences["job.resolved.niter"] == (50, 100)
    assert differences["limits.niter"] == (50, 100)
    assert all(base != cand for base, cand in differences.values()), differences
    # nothing else of the job differs
    assert [f for f in differences if f.startswith("job.")] == ["job.resolved.niter"]
    assert not any(f.startswith(("host.", "model", "dataset", "config.")) for f in differences)
    # each side's own verdict is not stable (runs of milliseconds), and no interval backs the
    # verdict (one run each, no steady seconds): the notes say so
    assert [n.split(" was judged ")[0] for n in body["notes"][:2]] == [
        "The baseline",
        "The candidate",
    ]
    assert body["notes"][2].startswith("No interval backs the verdict")

    swapped = compare(client, candidate, baseline, threshold=0.5).json()
    assert swapped["threshold"] == 0.5
    assert {d["field"]: (d["baseline"], d["candidate"]) for d in swapped["differences"]}[
        "job.resolved.niter"
    ] == (100, 50)
    swapped_fps = next(m for m in swapped["metrics"] if m["metric"] == "throughput_fps")
    assert swapped_fps["ratio"] == pytest.approx(1 / metrics["throughput_fps"]["ratio"])


def test_repeats_give_the_headline_metrics_a_bootstrap_interval(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    baseline = submit_job_id(client, model_id=model["id"], niter=20, repeats=3)
    candidate = submit_job_id(client, model_id=model["id"], niter=20, repeats=3)
    assert run_queue(settings, store) == 2
    succeeded(client, baseline, candidate)
    body = compare(client, baseline, candidate).json()
    metrics = {m["metric"]: m for m in body["metrics"]}
    for name in ("throughput_fps", "latency_median_ms", "latency_p99_ms"):
        metric = metrics[name]
        assert metric["ci_low"] is not None and metric["ci_high"] is not None, metric
        assert metric["ci_low"] <= metric["ratio"] <= metric["ci_high"], metric
        assert "3 vs 3 runs" in metric["method"] and "bootstrap" in metric["method"]
    for name in ("first_inference_ms", "compile_ms"):
        assert metrics[name]["ci_low"] is None, metrics[name]
        assert "one value per job" in metrics[name]["method"]
    assert body["differences"] == []  # the same job twice
    # the same request gives the same answer (the bootstrap is seeded)
    again = compare(client, baseline, candidate, threshold=0.021).json()
    assert again["metrics"][0]["ci_low"] == metrics["throughput_fps"]["ci_low"]


def test_a_job_and_its_rerun_differ_in_nothing_that_produced_them(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    """A rerun submits the original's resolved parameters: the comparison must not report
    the defaults it now names explicitly (hint, duration_s) as changes."""
    original = submit_job_id(client, model_id=model["id"])  # every default: a 1 s run
    assert run_queue(settings, store) == 1
    rerun = client.post(f"/jobs/{original}/rerun")
    assert rerun.status_code == 202, rerun.text
    assert run_queue(settings, store) == 1
    succeeded(client, original, rerun.json()["id"])
    body = compare(client, original, rerun.json()["id"]).json()
    assert body["differences"] == []


def test_a_job_without_a_result_to_trust_is_409_naming_it(
    client: TestClient,
    store: Store,
    settings: Settings,
    model: dict[str, Any],
    tmp_path: Path,
) -> None:
    dynamic = client.post("/models", files=model_files(write_dynamic_model(tmp_path / "dyn")))
    assert dynamic.status_code == 201, dynamic.text
    done = submit_job_id(client, model_id=model["id"], niter=10)
    broken = submit_job_id(client, model_id=dynamic.json()["id"], niter=3)  # fails: no data_shape
    assert run_queue(settings, store) == 2
    succeeded(client, done)
    queued = submit_job_id(client, model_id=model["id"], niter=10)

    error = assert_error(compare(client, done, queued), 409, "job_not_comparable")
    assert error["details"] == {"job_id": queued, "status": "queued"}
    assert f"candidate job {queued} is queued" in error["message"]
    assert "wait for it to finish" in error["message"]
    error = assert_error(compare(client, broken, done), 409, "job_not_comparable")
    assert error["details"] == {"job_id": broken, "status": "failed"}
    assert f"baseline job {broken} is failed" in error["message"]
    assert "wait" not in error["message"]

    # once it has succeeded it compares: the 409 was not kept by the read cache
    assert run_queue(settings, store) == 1
    succeeded(client, queued)
    assert compare(client, done, queued).status_code == 200


def test_an_unknown_job_is_404(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    done = submit_job_id(client, model_id=model["id"], niter=5)
    assert run_queue(settings, store) == 1
    for baseline, candidate in ((done, "nope"), ("nope", done)):
        error = assert_error(compare(client, baseline, candidate), 404, "job_not_found")
        assert "nope" in error["message"]


@pytest.mark.parametrize(
    "query",
    [
        {"threshold": 1},
        {"threshold": 1.5},
        {"threshold": -0.01},
        {"threshold": "two percent"},
    ],
)
def test_a_threshold_out_of_range_is_422(client: TestClient, query: dict[str, Any]) -> None:
    error = assert_error(compare(client, "a", "b", **query), 422, "validation_error")
    assert [d["loc"] for d in error["details"]] == [["query", "threshold"]]
    assert "threshold" in error["message"]


def test_both_jobs_are_required(client: TestClient) -> None:
    error = assert_error(client.get("/compare", params={"baseline": "a"}), 422, "validation_error")
    assert [d["loc"] for d in error["details"]] == [["query", "candidate"]]
    error = assert_error(client.get("/compare"), 422, "validation_error")
    assert sorted(d["loc"][1] for d in error["details"]) == ["baseline", "candidate"]


def test_a_repeated_comparison_is_the_same_body_with_an_etag(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    baseline = submit_job_id(client, model_id=model["id"], niter=10)
    candidate = submit_job_id(client, model_id=model["id"], niter=10, api="async")
    assert run_queue(settings, store) == 2
    first = compare(client, baseline, candidate)
    second = compare(client, baseline, candidate)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag == second.headers["etag"]
    unchanged = client.get(
        "/compare",
        params={"baseline": baseline, "candidate": candidate},
        headers={"If-None-Match": etag},
    )
    assert unchanged.status_code == 304 and unchanged.content == b""
    # another threshold is another answer, with its own tag
    other = compare(client, baseline, candidate, threshold=0.3)
    assert other.status_code == 200 and other.headers["etag"] != etag
    # a commit elsewhere empties the cache; the comparison comes out the same
    submit_job_id(client, model_id=model["id"], niter=1)
    third = compare(client, baseline, candidate)
    assert third.content == first.content and third.headers["etag"] == etag


def test_openapi_documents_compare(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/compare"]["get"]
    parameters = {p["name"]: p for p in route["parameters"]}
    assert set(parameters) == {"baseline", "candidate", "threshold"}
    assert parameters["baseline"]["required"] and parameters["candidate"]["required"]
    threshold = parameters["threshold"]["schema"]
    assert (threshold["minimum"], threshold["exclusiveMaximum"], threshold["default"]) == (
        0,
        1,
        0.02,
    )
    assert route["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Comparison"
    }
    assert {"404", "409", "422"} <= set(route["responses"])
    schemas = spec["components"]["schemas"]
    assert {"verdict", "metrics", "differences", "notes", "threshold"} <= set(
        schemas["Comparison"]["properties"]
    )
    assert set(schemas["MetricComparison"]["properties"]["metric"]["enum"]) == set(METRICS)
    assert "/jobs/{job_id}/rerun" in spec["paths"]
