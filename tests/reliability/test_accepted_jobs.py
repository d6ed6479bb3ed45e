"""Guarantee 1: a 202 is never lost, and `Idempotency-Key` makes a submission safe to retry."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Server
from tests.reliability.conftest import kill_service, restart

JOBS = 50
KILLS = 3


def _post(server: Server, key: str, **params: Any) -> httpx.Response:
    body = {"device": "CPU", "api": "sync", "niter": 1, **params}
    return server.client.post("/jobs", json=body, headers={"Idempotency-Key": key})


def test_every_202_survives_kill_9_of_the_service_at_random_moments(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    rng = random.Random(20261128)
    kill_before = set(rng.sample(range(3, JOBS - 3), KILLS))  # submissions a kill races with
    accepted: dict[str, str] = {}  # idempotency key -> job id from a 202
    transport_errors = 0
    for i in range(JOBS):
        key = f"durability-{i}"
        if i in kill_before:
            # Fire the kill a random few milliseconds into this and the next submissions:
            # before, during or after the commit of one of them.
            threading.Timer(rng.uniform(0.0, 0.03), kill_service, args=(server,)).start()
        while key not in accepted:
            try:
                response = _post(server, key, model_id=model_id)
            except httpx.TransportError:
                transport_errors += 1
                assert server.process is not None
                server.process.wait(timeout=10)  # the timer's kill: reaped, lock released
                server = restart(make_server, server)
                continue
            assert response.status_code == 202, response.text
            accepted[key] = response.json()["id"]
        if server.process is not None and server.process.poll() is not None:
            server = restart(make_server, server)  # killed right after answering
    assert transport_errors >= 1, "no kill landed during a request: the test proved nothing"

    kill_service(server)  # one more crash with everything accepted, then a clean start
    final = restart(make_server, server)
    jobs = final.client.get("/jobs", params={"limit": 1000}).json()
    ids = [job["id"] for job in jobs]
    assert len(ids) == len(set(ids)) == JOBS  # exactly once: no loss, no duplicate
    assert set(accepted.values()) == set(ids)
    for job in jobs:
        assert job["model_id"] == model_id
        assert job["status"] in ("queued", "running", "succeeded", "failed")
        if job["status"] == "failed":  # a worker killed with its service mid-run
            assert job["error"]["code"] in ("interrupted", "worker_lost"), job


def test_idempotency_key_returns_the_same_job_and_refuses_a_different_body(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]

    first = _post(server, "retry-me", model_id=model_id)
    again = _post(server, "retry-me", model_id=model_id)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == f"/jobs/{first.json()['id']}"

    reused = _post(server, "retry-me", model_id=model_id, niter=7)
    assert reused.status_code == 422, reused.text
    error = reused.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["details"]["job_id"] == first.json()["id"]
    assert "different request" in error["message"]

    other = _post(server, "another-key", model_id=model_id)
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    bad_key = _post(server, "spaces are not allowed", model_id=model_id)
    assert bad_key.status_code == 422 and bad_key.json()["error"]["code"] == "validation_error"

    # Eight concurrent retries of one submission: one job.
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: _post(server, "race", model_id=model_id), range(8)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1

    # Multipart one-shot: the retry stores nothing new.
    xml = e2e_files[0]
    files = [
        ("model", (xml.name, xml.read_bytes())),
        ("model", (xml.with_suffix(".bin").name, xml.with_suffix(".bin").read_bytes())),
        *[("inputs", (p.name, p.read_bytes())) for p in sorted(e2e_files[1].iterdir())],
    ]

    def one_shot(niter: str) -> httpx.Response:
        return server.client.post(
            "/jobs",
            files=files,
            data={"device": "CPU", "api": "sync", "niter": niter},
            headers={"Idempotency-Key": "one-shot"},
        )

    shot = one_shot("3")
    datasets_after_first = len(server.client.get("/datasets").json())
    shot_again = one_shot("3")
    assert shot.status_code == shot_again.status_code == 202, shot_again.text
    assert shot_again.json()["id"] == shot.json()["id"]
    assert len(server.client.get("/datasets").json()) == datasets_after_first
    assert one_shot("4").status_code == 422

    ids = [job["id"] for job in server.client.get("/jobs", params={"limit": 1000}).json()]
    assert len(ids) == 4  # retry-me, another-key, race, one-shot
