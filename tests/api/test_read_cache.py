"""Polled reads come from memory until the database changes, and carry ETags."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

from app.api import create_app
from app.api.read_cache import ReadCache
from app.engine.spec import DeviceInfo, Progress
from app.settings import Settings
from app.store import Store
from tests.api.conftest import model_files

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we ship
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient


class _CountingApp:
    """Answers every request with its call number (404 for /jobs/missing)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        status = 404 if scope["path"].endswith("/missing") else 200
        body = json.dumps({"call": self.calls}).encode()
        headers = [(b"content-type", b"application/json"), (b"x-total-count", b"7")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _cached_app(tmp_path: Path) -> tuple[_CountingApp, Store, TestClient]:
    store = Store(tmp_path / "data")
    store.migrate()
    inner = _CountingApp()
    return inner, store, TestClient(ReadCache(inner, store))


def test_same_read_is_served_from_memory_until_anything_commits(tmp_path: Path) -> None:
    inner, store, client = _cached_app(tmp_path)
    first = client.get("/jobs?limit=20")
    again = client.get("/jobs?limit=20")
    assert inner.calls == 1 and again.json() == first.json() == {"call": 1}
    assert again.headers["x-total-count"] == "7"  # the route's own headers are kept
    assert client.get("/jobs?limit=5").json() == {"call": 2}  # another query: another entry
    assert client.get("/jobs/abc").json() == {"call": 3}

    # A commit from another connection, as the worker's progress write: everything is stale.
    writer = Store(store.data_dir)
    writer.workers.record_start(pid=1)
    assert client.get("/jobs?limit=20").json() == {"call": 4}
    assert client.get("/jobs/abc").json() == {"call": 5}
    assert client.get("/jobs/abc").json() == {"call": 5}
    writer.close()
    store.close()


def test_only_database_backed_gets_with_200_are_kept(tmp_path: Path) -> None:
    inner, store, client = _cached_app(tmp_path)
    for _ in range(2):
        assert client.get("/jobs/missing").status_code == 404  # errors: always the route's
        client.get("/readyz")  # heartbeat age: time-dependent
        client.get("/metrics")
        client.post("/jobs")
        client.get("/jobs/abc/files")  # not a cacheable shape
    assert inner.calls == 10
    for path in ("/jobs", "/models", "/models/m1", "/datasets", "/datasets/d1", "/devices"):
        client.get(path)
        client.get(path)
    assert inner.calls == 16
    store.close()


def test_etag_and_if_none_match(tmp_path: Path) -> None:
    inner, store, client = _cached_app(tmp_path)
    first = client.get("/jobs/abc")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert client.get("/jobs/abc").headers["etag"] == etag  # the same bytes, the same tag
    unchanged = client.get("/jobs/abc", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    listed = client.get("/jobs/abc", headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    assert client.get("/jobs/abc", headers={"If-None-Match": '"other"'}).status_code == 200

    writer = Store(store.data_dir)
    writer.workers.record_start(pid=1)
    changed = client.get("/jobs/abc", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json() == {"call": 2}
    assert changed.headers["etag"] != etag
    assert inner.calls == 2
    writer.close()
    store.close()


def test_a_running_job_polled_through_the_app_is_always_current(
    client: TestClient, store: Store, model: dict[str, Any]
) -> None:
    submitted = client.post(
        "/jobs", json={"model_id": model["id"], "device": "CPU", "api": "sync", "niter": 5}
    )
    job_id = submitted.json()["id"]
    assert store.jobs.claim_next(worker_pid=1) is not None
    seen = []
    for iterations in range(1, 4):
        store.jobs.update_progress(
            job_id, Progress(fraction=iterations / 5, iterations=iterations, elapsed_s=0.1)
        )
        response = client.get(f"/jobs/{job_id}")
        again = client.get(f"/jobs/{job_id}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        seen.append(response.json()["progress"]["iterations"])
        assert client.get("/jobs").json()[0]["progress"]["iterations"] == iterations
    assert seen == [1, 2, 3]
    store.jobs.finish_failed(job_id, "inference_failed", "boom")
    assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.get("/jobs").json() == []


def test_off_sqlite_nothing_is_cached_and_every_read_is_current(
    tmp_path: Path, postgres_url: str, tiny_model: Path
) -> None:
    """On PostgreSQL the store has no change token: the cache steps aside (no ETag) and the
    API answers every poll from the database, with another process's commits in it."""
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_url, run_lock_path=tmp_path / "run.lock"
    )
    app = create_app(settings)
    store: Store = app.state.store
    assert store.change_token() is None
    store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
    writer = Store(tmp_path / "data", database_url=postgres_url)  # the worker's connections
    with TestClient(app, raise_server_exceptions=False) as client:
        model = client.post("/models", files=model_files(tiny_model))
        assert model.status_code == 201, model.text
        submitted = client.post(
            "/jobs", json={"model_id": model.json()["id"], "device": "CPU", "niter": 5}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert writer.jobs.claim_next(worker_pid=1) is not None
        for iterations in range(1, 4):
            writer.jobs.update_progress(
                job_id, Progress(fraction=iterations / 5, iterations=iterations, elapsed_s=0.1)
            )
            read = client.get(f"/jobs/{job_id}")
            assert read.status_code == 200 and "etag" not in read.headers
            assert read.json()["progress"]["iterations"] == iterations
            assert client.get("/jobs").json()[0]["progress"]["iterations"] == iterations
        writer.jobs.finish_failed(job_id, "inference_failed", "boom")
        assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"
        for path in ("/models", "/datasets", "/devices", "/readyz", "/metrics"):
            assert client.get(path).status_code in (200, 503), path
        assert [d["name"] for d in client.get("/devices").json()] == ["CPU"]
        assert client.get("/jobs/a%00b").status_code == 404  # NUL: not found, as on SQLite
        assert client.delete(f"/jobs/{job_id}").status_code == 204
        assert client.get(f"/jobs/{job_id}").status_code == 404
    writer.close()
    store.close()
