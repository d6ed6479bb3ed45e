"""/jobs with the worker off: validation, queueing, listing, cancel, delete, one-shot multipart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.store import Store
from tests.api.conftest import MAX_QUEUE, assert_error, image_files, model_files


def submit(client: TestClient, model_id: str, **params: Any) -> Any:
    return client.post(
        "/jobs", json={"model_id": model_id, "device": "CPU", "api": "sync", **params}
    )


def test_submit_returns_202_with_location_and_the_queued_job(
    client: TestClient, model: dict[str, Any], dataset: dict[str, Any]
) -> None:
    response = submit(
        client, model["id"], dataset_id=dataset["id"], niter=5, nireq=4, hint="latency"
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["queue_position"] == 1
    assert job["params"]["niter"] == 5 and job["params"]["hint"] == "latency"
    assert job["progress"] == {"fraction": 0.0, "iterations": 0, "elapsed_s": 0.0}
    assert job["result"] is None and job["error"] is None
    assert client.get(response.headers["location"]).json() == job


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"niter": 0}, "niter"),
        ({"nireq": 0}, "nireq"),
        ({"nireq": 1025}, "nireq"),
        ({"duration_s": 0.5}, "duration_s"),
        ({"duration_s": 86401}, "duration_s"),
        ({"api": "turbo"}, "api"),
        ({"pin": "MAYBE"}, "pin"),
        ({"hint": "fast"}, "hint"),
        ({"colour": "blue"}, "colour"),
        ({"niter": "many"}, "niter"),
    ],
)
def test_invalid_parameters_are_422_naming_the_field(
    client: TestClient, model: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    error = assert_error(submit(client, model["id"], **params), 422, "validation_error")
    assert any(detail["loc"][-1] == field for detail in error["details"]), error
    assert field in error["message"]


def test_missing_model_id_is_422_and_the_only_required_field(client: TestClient) -> None:
    error = assert_error(client.post("/jobs", json={}), 422, "validation_error")
    assert {d["loc"][-1] for d in error["details"]} == {"model_id"}


def test_unknown_device_is_422_listing_the_available_ones(
    client: TestClient, model: dict[str, Any]
) -> None:
    error = assert_error(submit(client, model["id"], device="NPU"), 422, "device_not_available")
    assert error["details"]["available"] == ["CPU"] and "CPU" in error["message"]
    assert_error(submit(client, model["id"], device="HETERO:GPU,CPU"), 422, "device_not_available")
    assert submit(client, model["id"], device="AUTO").status_code == 202
    assert submit(client, model["id"], device="MULTI:CPU").status_code == 202


def test_unknown_model_or_dataset_is_404(client: TestClient, model: dict[str, Any]) -> None:
    assert_error(submit(client, "nope"), 404, "model_not_found")
    assert_error(submit(client, model["id"], dataset_id="nope"), 404, "dataset_not_found")


def test_bad_bodies(client: TestClient) -> None:
    assert_error(
        client.post("/jobs", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    assert_error(client.post("/jobs", content=b"x", headers={"content-type": "text/plain"}), 415)
    assert_error(client.post("/jobs", json=[1, 2]), 422)


def test_full_queue_is_503(client: TestClient, model: dict[str, Any]) -> None:
    for _ in range(MAX_QUEUE):
        assert submit(client, model["id"]).status_code == 202
    error = assert_error(submit(client, model["id"]), 503, "queue_full")
    assert error["details"]["max_queue"] == MAX_QUEUE


def test_list_newest_first_with_filters_and_positions(
    client: TestClient, model: dict[str, Any]
) -> None:
    ids = [submit(client, model["id"]).json()["id"] for _ in range(3)]
    client.post(f"/jobs/{ids[1]}/cancel")
    listed = client.get("/jobs")
    assert [j["id"] for j in listed.json()] == ids[::-1]
    assert listed.headers["x-total-count"] == "3"
    queued = client.get("/jobs", params={"status": "queued"}).json()
    assert [(j["id"], j["queue_position"]) for j in queued] == [(ids[2], 2), (ids[0], 1)]
    assert [j["id"] for j in client.get("/jobs", params={"limit": 1, "offset": 1}).json()] == [
        ids[1]
    ]
    assert client.get("/jobs", params={"model_id": "other"}).json() == []
    assert_error(client.get("/jobs", params={"status": "weird"}), 422, "validation_error")
    assert_error(client.get("/jobs", params={"limit": 0}), 422, "validation_error")


def test_cancel_and_delete(client: TestClient, model: dict[str, Any], store: Store) -> None:
    job_id = submit(client, model["id"]).json()["id"]
    assert_error(client.delete(f"/jobs/{job_id}"), 409, "job_not_finished")
    cancelled = client.post(f"/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "cancelled"
    assert_error(client.post(f"/jobs/{job_id}/cancel"), 409, "job_finished")
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert_error(client.get(f"/jobs/{job_id}"), 404, "job_not_found")
    assert_error(client.post("/jobs/nope/cancel"), 404, "job_not_found")

    running_id = submit(client, model["id"]).json()["id"]
    store.jobs.claim_next(1)
    assert client.post(f"/jobs/{running_id}/cancel").json()["status"] == "running"
    assert store.jobs.is_cancel_requested(running_id)
    assert_error(client.delete(f"/jobs/{running_id}"), 409, "job_not_finished")


def test_one_shot_multipart_job(client: TestClient, tiny_model: Path, images_dir: Path) -> None:
    files = model_files(tiny_model, "model") + image_files(images_dir, "inputs")
    response = client.post(
        "/jobs",
        files=files,
        data={"device": "CPU", "api": "async", "niter": "7", "perf_counters": "true"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"]["niter"] == 7 and job["params"]["perf_counters"] is True
    model = client.get(f"/models/{job['model_id']}").json()
    assert model["name"] == "tiny_cnn"
    assert client.get(f"/datasets/{job['dataset_id']}").json()["count"] == len(
        list(images_dir.iterdir())
    )
    # the same files again reuse the model
    again = client.post(
        "/jobs",
        files=model_files(tiny_model, "model"),
        data={"params": '{"device": "CPU", "api": "sync"}'},
    )
    assert again.status_code == 202, again.text
    assert again.json()["model_id"] == job["model_id"] and again.json()["dataset_id"] is None


def test_one_shot_with_bad_params_stores_nothing(
    client: TestClient, store: Store, tiny_model: Path
) -> None:
    response = client.post(
        "/jobs",
        files=model_files(tiny_model, "model"),
        data={"device": "CPU", "api": "sync", "niter": "0"},
    )
    assert_error(response, 422, "validation_error")
    assert client.get("/models").json() == []
    assert list(store.blobs.tmp_dir.iterdir()) == []
    missing = client.post(
        "/jobs", data={"device": "CPU", "api": "sync"}, files={"nothing": ("a.png", b"")}
    )
    assert_error(missing, 422)


def test_one_shot_is_all_or_nothing(
    client: TestClient, store: Store, tiny_model: Path, images_dir: Path
) -> None:
    broken_model = [("model", ("m.xml", b"<net/>")), ("model", ("m.bin", b"1234"))]
    response = client.post(
        "/jobs",
        files=broken_model + image_files(images_dir, "inputs"),
        data={"device": "CPU", "api": "sync"},
    )
    assert_error(response, 422, "model_unreadable")
    assert client.get("/datasets").json() == [] and client.get("/models").json() == []
    for _ in range(MAX_QUEUE):
        client.post(
            "/jobs", files=model_files(tiny_model, "model"), data={"device": "CPU", "api": "sync"}
        )
    full = client.post(
        "/jobs",
        files=image_files(images_dir, "inputs"),
        data={"device": "CPU", "api": "sync", "model_id": client.get("/models").json()[0]["id"]},
    )
    assert_error(full, 503, "queue_full")
    assert client.get("/datasets").json() == []
    assert list(store.blobs.datasets_dir.iterdir()) == []
