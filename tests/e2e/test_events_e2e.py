"""Server-sent events from a real `ovbench serve`: a job's progress arrives while it runs and
its stream ends; 32 subscribers all get the final event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, plain_server, uploaded_model_id

SUBSCRIBERS = 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from plain_server(tmp_path_factory, "e2e_events")


@pytest.fixture(scope="module")
def model_id(server: Server, e2e_files: tuple[Path, Path]) -> str:
    return uploaded_model_id(server, e2e_files[0])


def stream_events(
    url: str, path: str, on_open: Any = None, until: Any = None
) -> list[dict[str, Any]]:
    """The events of one SSE stream to its end (or until `until(event)`), each with the
    monotonic time it arrived."""
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        if on_open is not None:
            on_open()
        for line in response.iter_lines():
            if line == "":
                if "event" in fields:
                    fields["arrived_s"] = time.monotonic()
                    events.append(fields)
                    if until is not None and until(fields):
                        break
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return events


def test_progress_arrives_while_the_job_runs_and_the_stream_ends(
    server: Server, model_id: str
) -> None:
    job = server.submit(model_id=model_id, duration_s=3)
    polled: set[int] = set()
    done = threading.Event()

    def poll() -> None:  # what the store says, every 0.1 s, while the stream runs
        while not done.is_set():
            body = server.job(job["id"])
            if body["status"] == "running":
                polled.add(body["progress"]["iterations"])
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        events = stream_events(server.url, f"/jobs/{job['id']}/events")
    finally:
        done.set()
        poller.join(timeout=10)
    assert [e["event"] for e in events][-1] == "end"
    jobs = [(json.loads(e["data"]), e["arrived_s"]) for e in events if e["event"] == "job"]
    final, final_arrived_s = jobs[-1]
    assert final["status"] == "succeeded"
    assert final == server.job(job["id"])
    running = [(body, at) for body, at in jobs if body["status"] == "running"]
    streamed = {body["progress"]["iterations"] for body, _ in running}
    # Every progress value the store had while the poller looked reached the stream.
    assert polled - {0} <= streamed, (sorted(polled), sorted(streamed))
    # Live: progress came in over the run (written twice a second), not in a burst at the end.
    measuring = [at for body, at in running if body["progress"]["iterations"] > 0]
    assert len(measuring) >= 4, len(measuring)
    assert final_arrived_s - measuring[0] >= 1.5


def test_32_subscribers_all_get_the_final_event(server: Server, model_id: str) -> None:
    # The job waits behind another, so that every subscriber is in before it runs.
    blocker = server.submit(model_id=model_id, duration_s=3)
    job_id = server.submit(model_id=model_id, duration_s=1)["id"]
    opened = threading.Semaphore(0)
    results: list[list[dict[str, Any]] | BaseException] = [[] for _ in range(SUBSCRIBERS)]

    def finished(event: dict[str, Any]) -> bool:
        body = json.loads(event["data"]) if event["event"] == "job" else {}
        return body.get("id") == job_id and body.get("status") == "succeeded"

    def subscribe(index: int) -> None:
        # Half follow the job, half the whole list.
        path = f"/jobs/{job_id}/events" if index % 2 == 0 else "/events"
        try:
            results[index] = stream_events(server.url, path, opened.release, finished)
        except BaseException as exc:  # reported below, in the test's thread
            results[index] = exc
            opened.release()

    threads = [threading.Thread(target=subscribe, args=(i,), daemon=True) for i in range(32)]
    for thread in threads:
        thread.start()
    for _ in range(SUBSCRIBERS):
        assert opened.acquire(timeout=30), "a subscriber could not connect"
    assert server.job(job_id)["status"] == "queued", "subscribers came in too late"
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a subscriber never got the final event"
    final = server.job(job_id)
    assert final["status"] == "succeeded" and server.job(blocker["id"])["status"] == "succeeded"
    for index, result in enumerate(results):
        assert not isinstance(result, BaseException), result
        jobs = [json.loads(e["data"]) for e in result if e["event"] == "job"]
        mine = [body for body in jobs if body["id"] == job_id]
        assert mine and mine[-1] == final, index
        statuses = [body["status"] for body in mine]
        assert statuses.index("running") < statuses.index("succeeded"), (index, statuses)
