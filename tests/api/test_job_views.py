"""Finished jobs' JSON is built once and reused; what is served always matches the store."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.api.job_views import FinishedJobJson
from app.engine.spec import Progress
from app.store import Store


def _submit(client: TestClient, model: dict[str, Any]) -> str:
    response = client.post(
        "/jobs", json={"model_id": model["id"], "device": "CPU", "api": "sync", "niter": 5}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_cache_evicts_least_recently_used_by_size() -> None:
    cache = FinishedJobJson(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # a is now the most recent
    cache.put("c", b"9012")  # 12 bytes > 10: the least recent (b) goes
    assert cache.get("b") is None
    assert cache.get("a") == b"1234" and cache.get("c") == b"9012"
    cache.put("big", b"x" * 11)  # larger than the whole cache: not kept, nothing evicted
    assert cache.get("big") is None and cache.get("a") == b"1234"


def test_running_job_is_read_fresh_and_finished_job_from_the_cache(
    client: TestClient, store: Store, model: dict[str, Any]
) -> None:
    job_id = _submit(client, model)
    claimed = store.jobs.claim_next(worker_pid=1)
    assert claimed is not None and claimed.id == job_id
    store.jobs.update_progress(job_id, Progress(fraction=0.4, iterations=2, elapsed_s=0.1))
    assert client.get(f"/jobs/{job_id}").json()["progress"]["iterations"] == 2
    store.jobs.update_progress(job_id, Progress(fraction=0.8, iterations=4, elapsed_s=0.2))
    assert client.get(f"/jobs/{job_id}").json()["progress"]["iterations"] == 4  # not cached

    store.jobs.finish_failed(job_id, "inference_failed", "boom")
    cache: FinishedJobJson = client.app.state.job_json  # type: ignore[attr-defined]
    first = client.get(f"/jobs/{job_id}")
    assert first.json()["status"] == "failed"
    assert cache.get(job_id) == first.content
    listed = client.get("/jobs").json()
    assert listed[0] == first.json()


def test_deleted_job_is_404_and_gone_from_lists_even_when_cached(
    client: TestClient, store: Store, model: dict[str, Any]
) -> None:
    job_id = _submit(client, model)
    assert client.post(f"/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert client.get(f"/jobs/{job_id}").status_code == 200  # now cached
    store.jobs.delete(job_id)  # behind the API's back: the cache still holds it
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert [j["id"] for j in client.get("/jobs").json()] == []
    assert client.get("/jobs").headers["X-Total-Count"] == "0"


def test_list_keeps_newest_first_with_mixed_cached_and_fresh_jobs(
    client: TestClient, store: Store, model: dict[str, Any]
) -> None:
    first = _submit(client, model)
    second = _submit(client, model)
    client.post(f"/jobs/{first}/cancel")
    client.get(f"/jobs/{first}")  # cache the finished one
    listed = client.get("/jobs").json()
    assert [j["id"] for j in listed] == [second, first]
    assert listed[0]["status"] == "queued" and listed[0]["queue_position"] == 1
    assert listed[1]["status"] == "cancelled" and listed[1]["queue_position"] is None
