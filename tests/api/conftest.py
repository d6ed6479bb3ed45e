"""Fixtures for API tests: the app over a temp data dir, with no worker (jobs stay queued)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we ship
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

from app.api import create_app
from app.engine.spec import DeviceInfo
from app.settings import Settings
from app.store import Store
from app.worker.worker import Worker

MAX_UPLOAD_BYTES = 64 * 1024
MAX_QUEUE = 3


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_queue=MAX_QUEUE,
        run_lock_path=tmp_path / "run.lock",  # never the host's lock
    )


def running_settings(tmp_path: Path, default_duration_s: dict[str, float]) -> Settings:
    """Settings for tests that run real jobs: short device default durations (the jobs that
    give no niter run them) and room in the queue."""
    return Settings(
        data_dir=tmp_path / "data",
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_queue=20,
        default_duration_s=default_duration_s,
        run_lock_path=tmp_path / "run.lock",  # never the host's lock
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    app.state.store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.store.close()


@pytest.fixture
def store(client: TestClient) -> Store:
    s: Store = client.app.state.store  # type: ignore[attr-defined]
    return s


def model_files(xml: Path, field: str = "file") -> list[tuple[str, tuple[str, bytes]]]:
    return [
        (field, (xml.name, xml.read_bytes())),
        (field, (xml.with_suffix(".bin").name, xml.with_suffix(".bin").read_bytes())),
    ]


def image_files(directory: Path, field: str = "file") -> list[tuple[str, tuple[str, bytes]]]:
    return [(field, (p.name, p.read_bytes())) for p in sorted(directory.iterdir())]


@pytest.fixture
def model(client: TestClient, tiny_model: Path) -> dict[str, Any]:
    response = client.post("/models", files=model_files(tiny_model))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def dataset(client: TestClient, images_dir: Path) -> dict[str, Any]:
    response = client.post("/datasets", files=image_files(images_dir))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape, with the expected status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


def submit_job_id(client: TestClient, **params: Any) -> str:
    """POST /jobs with these params: 202, the new job's id."""
    response = client.post("/jobs", json=params)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def run_queue(settings: Settings, store: Store) -> int:
    """Run every queued job to its end (the real engine), in this process."""
    return Worker(settings, store).run(burst=True)


def read_job(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
