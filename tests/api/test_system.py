"""Devices, health, readiness, version, metrics, OpenAPI and the error shape everywhere."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api import create_app
from app.settings import Settings
from app.store import Store
from tests.api.conftest import assert_error


def test_devices_are_what_the_worker_recorded(client: TestClient) -> None:
    assert client.get("/devices").json() == [
        {"name": "CPU", "full_name": "Test CPU", "properties": {}}
    ]


def test_health_and_version(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    version = client.get("/version").json()
    assert version["openvino"] and version["ovbench"] and version["api_version"] == "1"


def test_readyz_follows_the_worker_heartbeat(client: TestClient, store: Store) -> None:
    assert_error(client.get("/readyz"), 503, "worker_not_ready")
    store.workers.record_start(4242)
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["worker"]["pid"] == 4242


def test_readyz_fails_on_a_stale_heartbeat(settings: Settings) -> None:
    stale = settings.model_copy(update={"heartbeat_timeout_s": 1e-9})
    app = create_app(stale)
    app.state.store.workers.record_start(1)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_error(client.get("/readyz"), 503, "worker_not_ready")


def test_metrics_are_computed_from_the_store(
    client: TestClient, model: dict[str, Any], store: Store
) -> None:
    job = client.post(
        "/jobs", json={"model_id": model["id"], "device": "CPU", "api": "async"}
    ).json()
    client.post("/jobs", json={"model_id": model["id"], "device": "CPU", "api": "sync"})
    store.jobs.claim_next(1)
    store.jobs.finish_succeeded(
        job["id"], {"throughput_fps": 321.0, "iterations": 3, "latency_ms": {"median": 2.5}}
    )
    text = client.get("/metrics").text
    assert 'ovbench_jobs{status="succeeded"} 1.0' in text
    assert 'ovbench_jobs{status="queued"} 1.0' in text
    assert "ovbench_queue_depth 1.0" in text
    assert "ovbench_worker_busy 0.0" in text
    assert "ovbench_job_duration_seconds_count 1.0" in text
    assert (
        f'ovbench_last_throughput_fps{{api="async",batch="",device="CPU",hint="",model="tiny_cnn",model_id="{model["id"]}",nireq=""}} 321.0'
        in text
    )
    assert "ovbench_last_latency_seconds{" in text
    # computed per scrape: the store changes, the numbers follow
    store.jobs.claim_next(1)
    assert "ovbench_worker_busy 1.0" in client.get("/metrics").text


def test_openapi_documents_routes_errors_and_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in (
        "JobCreate",
        "JobRead",
        "ModelRead",
        "DatasetRead",
        "DeviceRead",
        "ErrorRead",
        "BenchmarkResult",
    ):
        assert name in schemas, name
    post_jobs = spec["paths"]["/jobs"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(post_jobs["requestBody"]["content"])
    assert {"202", "404", "413", "422", "503"} <= set(post_jobs["responses"])
    assert "409" in spec["paths"]["/models/{model_id}"]["delete"]["responses"]
    assert "multipart/form-data" in spec["paths"]["/models"]["post"]["requestBody"]["content"]
    # every documented error uses the one error shape, FastAPI's own 422 model included
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorRead"), (path, method, status)


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.put("/jobs"), 405, "method_not_allowed")


def test_unexpected_errors_are_500_without_a_traceback(settings: Settings) -> None:
    app: FastAPI = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["details"] is None
