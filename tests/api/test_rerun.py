"""POST /jobs/{id}/rerun (the job again, with its resolved parameters, `rerun_of` recorded),
JobCreate's repeats, rtol and atol, and the job in a result's provenance. Real runs of the tiny
model by an in-process worker in burst mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.engine.spec import BenchmarkResult
from app.settings import Settings
from app.store import Store
from tests.api.conftest import assert_error, model_files, read_job, run_queue, running_settings
from tests.factories import write_dynamic_model

DURATIONS_S = {"CPU": 1.0, "UNKNOWN": 1.0}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A 1 s default run (the jobs below that give no niter run it) and room in the queue."""
    return running_settings(tmp_path, DURATIONS_S)


def submit(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.post("/jobs", json=params)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def rerun(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.post(f"/jobs/{job_id}/rerun")
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/jobs/{body['id']}"
    return body


def set_values(resolved: dict[str, Any]) -> dict[str, Any]:
    """What a rerun submits: the resolved parameters that are set (null and [] left out)."""
    return {k: v for k, v in resolved.items() if v is not None and v != []}


def test_a_rerun_queues_the_resolved_params_records_its_origin_and_runs_alike(
    client: TestClient,
    store: Store,
    settings: Settings,
    model: dict[str, Any],
    dataset: dict[str, Any],
) -> None:
    original = submit(
        client, model_id=model["id"], dataset_id=dataset["id"], api="async", niter=24, repeats=2
    )
    assert run_queue(settings, store) == 1
    done = read_job(client, original["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["rerun_of"] is None
    resolved = done["resolved_params"]
    # what the submission left to the defaults is filled in
    assert "hint" not in done["params"] and resolved["hint"] == "throughput"
    assert "nireq" not in done["params"] and resolved["nireq"] >= 1

    again = rerun(client, original["id"])
    assert again["id"] != original["id"]
    assert again["rerun_of"] == original["id"]
    assert again["status"] == "queued" and again["result"] is None
    assert again["resolved_params"] == resolved
    assert again["params"] == set_values(resolved)
    assert (again["params"]["niter"], again["params"]["repeats"]) == (24, 2)
    assert again["params"]["hint"] == "throughput"  # pinned: the run does not depend on defaults
    assert read_job(client, again["id"]) == again
    assert read_job(client, original["id"])["rerun_of"] is None

    assert run_queue(settings, store) == 1
    ran = read_job(client, again["id"])
    assert ran["status"] == "succeeded", ran["error"]
    assert ran["rerun_of"] == original["id"]
    first = BenchmarkResult.model_validate(done["result"])
    second = BenchmarkResult.model_validate(ran["result"])
    want = {"niter": 24, "duration_s": None, "nireq": resolved["nireq"]}
    assert second.limits == first.limits == want
    assert len(second.runs) == len(first.runs) == 2
    assert (second.config.hint, second.config.nstreams) == (
        first.config.hint,
        first.config.nstreams,
    )
    assert second.provenance is not None and first.provenance is not None
    assert second.provenance.job is not None and first.provenance.job is not None
    assert second.provenance.job["resolved"] == first.provenance.job["resolved"]
    assert second.provenance.dataset_sha256 == first.provenance.dataset_sha256 is not None
    assert second.provenance.model_sha256 == first.provenance.model_sha256


def test_a_rerun_of_a_rerun_points_at_the_job_it_repeats(
    client: TestClient, model: dict[str, Any]
) -> None:
    original = submit(client, model_id=model["id"], niter=5)
    first = rerun(client, original["id"])
    second = rerun(client, first["id"])
    assert (first["rerun_of"], second["rerun_of"]) == (original["id"], first["id"])
    assert second["resolved_params"] == first["resolved_params"] == original["resolved_params"]
    listed = {job["id"]: job["rerun_of"] for job in client.get("/jobs").json()}
    assert listed == {original["id"]: None, first["id"]: original["id"], second["id"]: first["id"]}


def test_a_rerun_keeps_the_defaults_its_original_ran_with(
    client: TestClient,
    store: Store,
    settings: Settings,
    model: dict[str, Any],
) -> None:
    """A succeeded job's rerun takes the defaults its result recorded, not the server's now;
    a job that never ran has none recorded, so its rerun resolves them now."""
    ran = submit(client, model_id=model["id"])  # neither niter nor duration_s: 1 s by default
    assert run_queue(settings, store) == 1
    assert read_job(client, ran["id"])["status"] == "succeeded"
    never_ran = submit(client, model_id=model["id"])

    later = settings.model_copy(update={"default_duration_s": {"CPU": 30.0, "UNKNOWN": 30.0}})
    with TestClient(create_app(later, store), raise_server_exceptions=False) as restarted:
        again = rerun(restarted, ran["id"])
        assert again["params"]["duration_s"] == 1.0
        assert again["resolved_params"]["duration_s"] == 1.0
        assert read_job(restarted, ran["id"])["resolved_params"]["duration_s"] == 30.0  # now
        queued_again = rerun(restarted, never_ran["id"])
        assert queued_again["params"]["duration_s"] == 30.0
        assert (
            queued_again["resolved_params"]
            == read_job(restarted, never_ran["id"])["resolved_params"]
        )


def test_a_failed_job_can_be_rerun(
    client: TestClient, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Any state will do: a failed job may be worth a retry (here it fails the same way)."""
    upload = client.post("/models", files=model_files(write_dynamic_model(tmp_path / "dyn")))
    assert upload.status_code == 201, upload.text
    original = submit(client, model_id=upload.json()["id"], niter=3)
    assert run_queue(settings, store) == 1
    failed = read_job(client, original["id"])
    assert failed["status"] == "failed" and failed["result"] is None
    again = rerun(client, original["id"])
    assert again["rerun_of"] == original["id"]
    assert again["resolved_params"] == failed["resolved_params"]
    assert run_queue(settings, store) == 1
    retried = read_job(client, again["id"])
    assert retried["status"] == "failed"
    assert retried["error"]["code"] == failed["error"]["code"] == "dynamic_shape_unresolved"


def test_rerun_of_an_unknown_job_is_404(client: TestClient) -> None:
    error = assert_error(client.post("/jobs/no-such-job/rerun"), 404, "job_not_found")
    assert "no-such-job" in error["message"]
    assert client.get("/jobs").json() == []


def test_rerun_needs_the_model_and_the_dataset_still_there(
    client: TestClient,
    store: Store,
    settings: Settings,
    model: dict[str, Any],
    dataset: dict[str, Any],
    tiny_model: Path,
) -> None:
    with_data = submit(client, model_id=model["id"], dataset_id=dataset["id"], niter=3)
    assert run_queue(settings, store) == 1
    assert client.delete(f"/datasets/{dataset['id']}").status_code == 204
    error = assert_error(client.post(f"/jobs/{with_data['id']}/rerun"), 404, "dataset_not_found")
    assert dataset["id"] in error["message"]

    assert client.delete(f"/models/{model['id']}").status_code == 204
    error = assert_error(client.post(f"/jobs/{with_data['id']}/rerun"), 404, "model_not_found")
    assert model["id"] in error["message"]
    assert [job["id"] for job in client.get("/jobs").json()] == [with_data["id"]]  # none queued


@pytest.mark.parametrize("with_dataset", [True, False], ids=["dataset", "random-data"])
def test_the_result_records_the_job_as_submitted_and_as_resolved(
    client: TestClient,
    store: Store,
    settings: Settings,
    model: dict[str, Any],
    dataset: dict[str, Any],
    with_dataset: bool,
) -> None:
    extra = {"dataset_id": dataset["id"]} if with_dataset else {}
    queued = submit(client, model_id=model["id"], niter=5, nstreams=1, rtol=0.5, **extra)
    assert run_queue(settings, store) == 1
    job = read_job(client, queued["id"])
    assert job["status"] == "succeeded", job["error"]
    recorded = job["result"]["provenance"]["job"]
    assert recorded["resolved"] == job["resolved_params"]
    assert recorded["submitted"] == job["params"]


# --- JobCreate: repeats, rtol, atol -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repeats", 0),
        ("repeats", 101),
        ("repeats", 2.5),
        ("rtol", -0.01),
        ("atol", -1),
        ("rtol", 1e7),
    ],
)
def test_repeats_rtol_and_atol_out_of_range_are_422_naming_the_field(
    client: TestClient, model: dict[str, Any], field: str, value: float
) -> None:
    response = client.post("/jobs", json={"model_id": model["id"], field: value})
    error = assert_error(response, 422, "validation_error")
    assert field in error["message"], error
    assert [d["loc"] for d in error["details"]] == [["body", field]], error
    assert client.get("/jobs").json() == []


def test_repeats_run_after_one_compile_and_are_aggregated(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    queued = submit(client, model_id=model["id"], niter=20, repeats=3)
    assert queued["params"]["repeats"] == queued["resolved_params"]["repeats"] == 3
    assert run_queue(settings, store) == 1
    job = read_job(client, queued["id"])
    assert job["status"] == "succeeded", job["error"]
    result = BenchmarkResult.model_validate(job["result"])
    assert len(result.runs) == 3
    assert all(run.iterations == 20 for run in result.runs)
    aggregate = result.aggregate
    assert aggregate is not None and aggregate.repeats == 3
    fps = sorted(run.throughput_fps for run in result.runs)
    assert aggregate.throughput_fps.median == pytest.approx(fps[1])
    assert (aggregate.throughput_fps.min, aggregate.throughput_fps.max) == (
        pytest.approx(fps[0]),
        pytest.approx(fps[2]),
    )
    # the top level shows the median run's figures
    assert result.throughput_fps == pytest.approx(result.runs[aggregate.median_run].throughput_fps)
    assert result.stability is not None and result.stability.verdict in (
        "stable",
        "noisy",
        "drifting",
        "too_short",
    )


def test_one_repeat_has_no_aggregate(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    queued = submit(client, model_id=model["id"], niter=10)
    assert queued["resolved_params"]["repeats"] == 1
    assert run_queue(settings, store) == 1
    result = BenchmarkResult.model_validate(read_job(client, queued["id"])["result"])
    assert len(result.runs) == 1 and result.aggregate is None


def test_openapi_documents_the_rerun(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/jobs/{job_id}/rerun"]["post"]
    assert {"202", "404"} <= set(route["responses"])
    assert route["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobRead"
    }
    assert "Location" in route["responses"]["202"]["headers"]
    assert "rerun_of" in spec["components"]["schemas"]["JobRead"]["properties"]
    job_create = spec["components"]["schemas"]["JobCreate"]["properties"]
    assert (job_create["repeats"]["minimum"], job_create["repeats"]["maximum"]) == (1, 100)
    assert {"rtol", "atol"} <= set(job_create)
