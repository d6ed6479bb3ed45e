"""Submitting a job hands it to the dispatcher once it is committed, and only then.

The dispatcher here records what it is told (a fake at the seam: the engines behind it are
tested in tests/worker and tests/e2e); the app, the store and the uploads are real.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

from app.api import create_app
from app.engine.spec import DeviceInfo
from app.settings import Settings
from app.store import Store
from tests.api.conftest import image_files, model_files


class RecordingDispatcher:
    """Records `job_queued`, checking from a separate connection that the job is committed."""

    def __init__(self, data_dir: Path) -> None:
        self.reader = Store(data_dir)  # its own connections: sees only what was committed
        self.queued: list[str] = []

    def place(self, device: str, host: str | None, host_labels: dict[str, str] | None) -> None:
        return None  # every job runs here

    def placing(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def start(self) -> None:
        raise AssertionError("the API never starts the engine")

    def stop(self, timeout_s: float | None = None) -> None:
        raise AssertionError("the API never stops the engine")

    def job_queued(self, job_id: str, host: str | None) -> None:
        assert self.reader.jobs.get(job_id).status == "queued"
        self.queued.append(job_id)


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[RecordingDispatcher]:
    recording = RecordingDispatcher(tmp_path / "data")
    yield recording
    recording.reader.close()


@pytest.fixture
def client(tmp_path: Path, dispatcher: RecordingDispatcher) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "data"), dispatcher=dispatcher)
    app.state.store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.store.close()


def test_a_json_job_is_dispatched_once_committed_and_a_retry_is_not(
    client: TestClient, dispatcher: RecordingDispatcher, tiny_model: Path
) -> None:
    model_id = client.post("/models", files=model_files(tiny_model)).json()["id"]
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/jobs", json={"model_id": model_id, "niter": 5}, headers=headers)
    assert first.status_code == 202, first.text
    assert dispatcher.queued == [first.json()["id"]]
    again = client.post("/jobs", json={"model_id": model_id, "niter": 5}, headers=headers)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert dispatcher.queued == [first.json()["id"]]  # the same job: nothing new to run


def test_refused_jobs_are_not_dispatched(
    client: TestClient, dispatcher: RecordingDispatcher, tiny_model: Path
) -> None:
    model_id = client.post("/models", files=model_files(tiny_model)).json()["id"]
    assert client.post("/jobs", json={"model_id": "nope"}).status_code == 404
    assert client.post("/jobs", json={"model_id": model_id, "nireq": 0}).status_code == 422
    bad_shape = {"model_id": model_id, "shape": "image[1,3,8,8]"}
    assert client.post("/jobs", json=bad_shape).status_code == 422
    assert dispatcher.queued == []


def test_a_one_shot_job_is_dispatched_after_its_files_are_stored(
    client: TestClient, dispatcher: RecordingDispatcher, tiny_model: Path, images_dir: Path
) -> None:
    files = model_files(tiny_model, "model") + image_files(images_dir, "inputs")
    response = client.post("/jobs", files=files, data={"niter": "5"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert dispatcher.queued == [job["id"]]
    assert client.get(f"/models/{job['model_id']}").status_code == 200
    assert client.get(f"/datasets/{job['dataset_id']}").status_code == 200
