"""Server-sent events: GET /jobs/{id}/events follows one job to its end, GET /events every
job's changes; one watcher reads the store once per change and fans the same bytes out to
every subscriber. A real worker in a thread runs the tiny model."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event

from app.api.events import EventHub, JobEvent
from app.engine.spec import Progress
from app.settings import Settings
from app.store import Store
from app.worker.worker import Worker
from tests.api.conftest import assert_error, running_settings

FINAL = ("succeeded", "failed", "cancelled")
STATUS_ORDER = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return running_settings(tmp_path, {"CPU": 1.0, "UNKNOWN": 1.0})


@pytest.fixture
def worker(settings: Settings, store: Store) -> Iterator[Worker]:
    """The real worker polling the queue in a thread, stopped at teardown."""
    running = Worker(settings, store)
    thread = threading.Thread(target=running.run, name="test-worker", daemon=True)
    thread.start()
    yield running
    running.stop_event.set()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the worker did not stop"


def read_events(response: Any, until: Any = None) -> list[dict[str, Any]]:
    """Parse a text/event-stream into [{"event", "data", "id"} | {"comment"}] until the
    stream ends or `until(events)` is true."""
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            events.append({"comment": line[1:].strip()})
            if until is not None and until(events):
                return events
        elif line == "":
            if "event" in fields or "data" in fields:
                events.append(fields)
                if until is not None and until(events):
                    return events
            fields = {}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    return events


def jobs_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(e["data"]) for e in events if e.get("event") == "job"]


def submit(client: TestClient, model_id: str, **params: Any) -> str:
    body = {"model_id": model_id, "device": "CPU", "api": "sync", **(params or {"duration_s": 1.6})}
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_job_events_follow_the_job_in_order_and_end(
    client: TestClient, model: dict[str, Any], worker: Worker
) -> None:
    job_id = submit(client, model["id"])
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = read_events(response)
    names = [e["event"] for e in events if "event" in e]
    assert names[-1] == "end" and names.count("end") == 1, names
    assert json.loads(events[-1]["data"]) == {}
    jobs = jobs_of(events)
    assert {job["id"] for job in jobs} == {job_id}
    statuses = [job["status"] for job in jobs]
    assert statuses[-1] == "succeeded", statuses
    assert [STATUS_ORDER[s] for s in statuses] == sorted(STATUS_ORDER[s] for s in statuses)
    running = [job for job in jobs if job["status"] == "running"]
    iterations = [job["progress"]["iterations"] for job in running]
    assert iterations == sorted(iterations)
    # Progress is written twice a second over a 1.6 s run: several updates arrive live.
    assert len({i for i in iterations if i > 0}) >= 2, iterations
    # Each event is one change: no two consecutive events carry the same JSON.
    assert all(a != b for a, b in itertools.pairwise(jobs))
    # The final event is exactly what GET /jobs/{id} returns.
    assert jobs[-1] == client.get(f"/jobs/{job_id}").json()


def test_a_finished_job_streams_its_state_then_end(
    client: TestClient, model: dict[str, Any], worker: Worker
) -> None:
    job_id = submit(client, model["id"], niter=20)
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        read_events(response)  # to its end
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        events = [e for e in read_events(response) if "event" in e]
    assert [e["event"] for e in events] == ["job", "end"]
    assert json.loads(events[0]["data"]) == client.get(f"/jobs/{job_id}").json()


def test_unknown_job_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/jobs/nope/events")
    assert_error(response, 404, "job_not_found")
    assert client.app.state.event_hub.subscribers == 0  # type: ignore[attr-defined]


def test_two_subscribers_get_the_same_events_in_order_then_the_deletion(
    client: TestClient, model: dict[str, Any], settings: Settings, store: Store
) -> None:
    hub: EventHub = client.app.state.event_hub  # type: ignore[attr-defined]
    received: list[list[dict[str, Any]]] = [[], []]
    job_ids: list[str] = []

    def deleted(events: list[dict[str, Any]]) -> bool:
        return any(e.get("event") == "job_deleted" for e in events)

    def listen(index: int) -> None:
        with client.stream("GET", "/events") as response:
            assert response.status_code == 200
            received[index] = read_events(response, until=deleted)

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    _wait(lambda: hub.subscribers == 2, "two subscribers")
    job_ids.append(submit(client, model["id"], duration_s=1.2))
    # A state shorter than one watcher tick (50 ms) may merge with the next: let it see this.
    _wait(lambda: hub.current(job_ids[0]) is not None, "the hub to see the queued job")
    assert Worker(settings, store).run(burst=True) == 1
    final = client.get(f"/jobs/{job_ids[0]}").json()
    _wait(lambda: hub.current(job_ids[0]) is None, "the hub to see the job finished")
    assert client.delete(f"/jobs/{job_ids[0]}").status_code == 204
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    first, second = ([e for e in events if "event" in e] for events in received)
    assert first == second  # the same ids, events and bytes
    ids = [int(e["id"]) for e in first]
    assert ids == sorted(set(ids))
    assert [e["event"] for e in first][-1] == "job_deleted"
    assert json.loads(first[-1]["data"]) == {"id": job_ids[0]}
    jobs = jobs_of(first)
    assert jobs[0]["status"] == "queued" and jobs[0]["queue_position"] == 1
    assert "running" in [job["status"] for job in jobs]
    assert jobs[-1] == final


def test_last_event_id_replays_what_was_missed_or_asks_for_a_resync(
    client: TestClient, model: dict[str, Any]
) -> None:
    hub: EventHub = client.app.state.event_hub  # type: ignore[attr-defined]
    with client.stream("GET", "/events") as live:
        _wait(lambda: hub.subscribers == 1, "the subscriber")
        submit(client, model["id"])
        submit(client, model["id"])
        events = read_events(live, until=lambda ev: len(jobs_of(ev)) == 2)
        first_id = next(e["id"] for e in events if e.get("event") == "job")
        with client.stream("GET", "/events", headers={"Last-Event-ID": first_id}) as again:
            replayed = read_events(again, until=lambda ev: len(ev) >= 1)
        with client.stream("GET", "/events", headers={"Last-Event-ID": "12"}) as stale:
            resync = read_events(stale, until=lambda ev: len(ev) >= 1)
    assert [e["event"] for e in replayed] == ["job"]
    assert replayed[0] == [e for e in events if e.get("event") == "job"][1]
    assert [e["event"] for e in resync] == ["resync"]


def test_keepalive_comments_while_nothing_changes(client: TestClient) -> None:
    hub: EventHub = client.app.state.event_hub  # type: ignore[attr-defined]
    hub.keepalive_s = 0.1
    with client.stream("GET", "/events") as response:
        events = read_events(response, until=lambda ev: any("comment" in e for e in ev))
    assert {"comment": "keepalive"} in events


def _wait(predicate: Any, what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------- the hub itself


def _running_job(client: TestClient, store: Store, model_id: str) -> str:
    job_id = submit(client, model_id, duration_s=60)
    claimed = store.jobs.claim_next(worker_pid=1)
    assert claimed is not None and claimed.id == job_id
    return job_id


async def _next(queue: asyncio.Queue[Any]) -> Any:
    while True:
        item = await asyncio.wait_for(queue.get(), timeout=10)
        if isinstance(item, JobEvent) or item is None:
            return item


def test_the_watcher_reads_the_store_once_per_change_for_every_subscriber(
    client: TestClient, model: dict[str, Any], store: Store, settings: Settings
) -> None:
    job_id = _running_job(client, store, model["id"])
    statements: list[str] = []

    def count(*args: Any) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):  # not update_progress's
            statements.append(str(args[2]))

    async def scenario() -> tuple[int, int]:
        hub = EventHub(store, settings.default_duration_s)
        subs = [hub.subscribe() for _ in range(8)]
        await hub.fresh()
        looks = hub.looks
        sa_event.listen(store.engine, "before_cursor_execute", count)
        try:
            for step in range(1, 6):
                progress = Progress(fraction=step / 10, iterations=step * 7, elapsed_s=step / 2)
                await asyncio.to_thread(store.jobs.update_progress, job_id, progress)
                got = [await _next(sub.queue) for sub in subs]
                # The same event object (the same bytes) on every queue.
                assert all(item is got[0] for item in got)
                body = json.loads(got[0].frame.split(b"data: ", 1)[1])
                assert body["progress"]["iterations"] == step * 7
        finally:
            sa_event.remove(store.engine, "before_cursor_execute", count)
        reads = hub.looks - looks
        await hub.close()
        return reads, len(statements)

    reads, statement_count = asyncio.run(scenario())
    assert reads == 5  # one look per commit, not one per subscriber (8)
    assert statement_count == 2 * 5  # each look: the rows that may have changed, and a count


def test_the_watcher_sleeps_until_a_commit_instead_of_ticking(
    client: TestClient, model: dict[str, Any], store: Store, settings: Settings
) -> None:
    """On SQLite the watcher waits on the store's commit signal: idle, it wakes only for its
    once-a-second safety look (not every `interval_s`), and a commit still wakes it at once."""
    job_id = _running_job(client, store, model["id"])

    async def scenario() -> tuple[int, int, float]:
        hub = EventHub(store, settings.default_duration_s, interval_s=0.01)
        sub = hub.subscribe(job_id)
        await hub.fresh()
        await asyncio.sleep(0.1)  # the settling after the claim's commit is over
        wakeups = hub.wakeups
        await asyncio.sleep(1.5)  # 150 ticks at 0.01 s if it ticked
        idle_wakeups = hub.wakeups - wakeups
        wakeups = hub.wakeups
        started = time.monotonic()
        progress = Progress(fraction=0.5, iterations=42, elapsed_s=1.0)
        await asyncio.to_thread(store.jobs.update_progress, job_id, progress)
        event = await _next(sub.queue)
        assert json.loads(event.frame.split(b"data: ", 1)[1])["progress"]["iterations"] == 42
        arrived_s = time.monotonic() - started
        commit_wakeups = hub.wakeups - wakeups
        await hub.close()
        return idle_wakeups, commit_wakeups, arrived_s

    assert store.commit_signal() is not None  # Linux, a SQLite file: inotify watches it
    idle_wakeups, commit_wakeups, arrived_s = asyncio.run(scenario())
    assert idle_wakeups <= 3, idle_wakeups  # the safety look once a second
    assert 1 <= commit_wakeups <= 8, commit_wakeups  # the write, then the settling reads
    assert arrived_s < 1.0  # woken by the commit, not by the safety look


def test_commits_in_quick_succession_are_each_looked_at_without_waiting_for_the_safety_look(
    client: TestClient, model: dict[str, Any], store: Store, settings: Settings
) -> None:
    """A commit written while the watcher waits for the one before to become visible (the
    worker's progress, then another write at once) is looked at when it becomes visible, not
    a second later: the last state always arrives, found through the signal."""
    job_id = _running_job(client, store, model["id"])

    async def scenario() -> tuple[list[int], int]:
        hub = EventHub(store, settings.default_duration_s)
        sub = hub.subscribe(job_id)
        await hub.fresh()
        seen: list[int] = []
        for step in range(1, 9):
            first = Progress(fraction=step / 20, iterations=step * 10, elapsed_s=step)
            second = Progress(fraction=step / 20, iterations=step * 10 + 1, elapsed_s=step)

            def both(a: Progress = first, b: Progress = second, gap_s: float = step / 1000) -> None:
                store.jobs.update_progress(job_id, a)
                time.sleep(gap_s)  # 1 to 8 ms: while the first settles
                store.jobs.update_progress(job_id, b)

            await asyncio.to_thread(both)
            while not seen or seen[-1] != step * 10 + 1:
                event = await _next(sub.queue)
                seen.append(
                    json.loads(event.frame.split(b"data: ", 1)[1])["progress"]["iterations"]
                )
        missed = hub.signal_missed
        await hub.close()
        return seen, missed

    seen, missed = asyncio.run(scenario())
    assert missed == 0, seen
    assert [value for value in seen if value % 10 == 1] == [s * 10 + 1 for s in range(1, 9)]


def test_a_slow_subscriber_is_dropped_and_the_others_keep_their_events(
    client: TestClient, model: dict[str, Any], store: Store, settings: Settings
) -> None:
    job_id = _running_job(client, store, model["id"])

    async def scenario() -> tuple[list[Any], list[Any], int]:
        hub = EventHub(store, settings.default_duration_s, queue_events=2)
        slow, fast = hub.subscribe(), hub.subscribe()
        await hub.fresh()
        got: list[Any] = []
        for step in range(1, 5):
            progress = Progress(fraction=step / 10, iterations=step, elapsed_s=step / 2)
            await asyncio.to_thread(store.jobs.update_progress, job_id, progress)
            got.append(await _next(fast.queue))
        left = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        subscribers = hub.subscribers
        await hub.close()
        return got, left, subscribers

    got, left, subscribers = asyncio.run(scenario())
    assert all(isinstance(item, JobEvent) for item in got) and len(got) == 4
    assert left == [None]  # its stream ends; EventSource reconnects with Last-Event-ID
    assert subscribers == 1


def test_the_watcher_follows_a_job_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """PostgreSQL has no change token or commit signal: the watcher looks every tick, and a
    subscriber still gets each progress once, in order, then the job's end."""
    from tests.store.conftest import add_model_row

    pg = Store(tmp_path / "data", database_url=postgres_url)
    pg.migrate()
    try:
        assert pg.change_token() is None and pg.commit_signal() is None
        model = add_model_row(pg)
        job = pg.jobs.create(
            {"model_id": model.id, "device": "CPU", "api": "async", "duration_s": 60}, 10
        )
        assert pg.jobs.claim_next(worker_pid=1) is not None

        async def scenario() -> list[tuple[str, int | None]]:
            hub = EventHub(pg, {"CPU": 60.0}, interval_s=0.02)
            sub = hub.subscribe(job.id)
            await hub.fresh()
            seen: list[tuple[str, int | None]] = []
            for step in (1, 2, 3):
                progress = Progress(fraction=step / 10, iterations=step * 5, elapsed_s=step)
                await asyncio.to_thread(pg.jobs.update_progress, job.id, progress)
                body = json.loads((await _next(sub.queue)).frame.split(b"data: ", 1)[1])
                seen.append((body["status"], body["progress"]["iterations"]))
            await asyncio.to_thread(pg.jobs.finish_failed, job.id, "internal_error", "test end")
            event = await _next(sub.queue)
            body = json.loads(event.frame.split(b"data: ", 1)[1])
            seen.append((body["status"], None))
            assert event.final
            await hub.close()
            return seen

        assert asyncio.run(scenario()) == [
            ("running", 5),
            ("running", 10),
            ("running", 15),
            ("failed", None),
        ]
    finally:
        pg.close()
