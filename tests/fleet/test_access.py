"""Guarantee 7 and routing, through a real fleet API: agent tokens are not user tokens, an
agent reads only the files of jobs routed to its host and cannot submit; jobs go where they
may run, and GET /hosts says how each host stands. The "agents" here speak the protocol with
httpx, so that jobs stay queued where a test wants them."""

from __future__ import annotations

import hashlib
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.conftest import Api, Fleet

CPU = {"name": "CPU", "full_name": "a CPU", "properties": {}}
GPU = {"name": "GPU.0", "full_name": "a GPU", "properties": {}}


def _agent(api: Api, fleet: Fleet, name: str) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {fleet.token(name)}"}, timeout=10
    )


def _register(client: httpx.Client, devices: list[dict[str, Any]], **labels: str) -> None:
    body = {"devices": devices, "labels": labels, "facts": {}, "agent_version": "test"}
    response = client.post("/agent/register", json=body)
    assert response.status_code == 200, response.text


@pytest.fixture
def api(fleet: Fleet) -> Api:
    return fleet.start_api()


def test_7_agent_tokens_open_only_the_agent_routes_and_only_their_hosts_files(
    fleet: Fleet, api: Api, fleet_model: Path
) -> None:
    a, b = _agent(api, fleet, "lab-a"), _agent(api, fleet, "lab-b")
    _register(a, [CPU])
    _register(b, [CPU])
    model_id = api.upload_model(fleet_model)
    job = api.submit(model_id=model_id, niter=5, host="lab-b")
    xml_sha = hashlib.sha256(fleet_model.read_bytes()).hexdigest()

    # An agent cannot submit, list or read jobs: 403, whatever its token is good for.
    refused = a.post("/jobs", json={"model_id": model_id})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert a.get(f"/jobs/{job['id']}").status_code == 403
    # A user token opens no agent route.
    assert api.client.post("/agent/register", json={}).status_code == 401
    assert api.client.get(f"/agent/blobs/{xml_sha}").status_code == 401
    assert httpx.get(f"{api.url}/agent/blobs/{xml_sha}").status_code == 401
    # Files: only the host the job is routed to, and only while it is queued or running.
    assert a.get(f"/agent/blobs/{xml_sha}").json()["error"]["code"] == "not_your_blob"
    own = b.get(f"/agent/blobs/{xml_sha}")
    assert own.status_code == 200 and own.content == fleet_model.read_bytes()
    # Another host's job: not claimable, its progress and outcome not writable.
    token = {"claim_token": uuid.uuid4().hex}
    assert a.post(f"/agent/jobs/{job['id']}/claim", json=token).status_code == 409
    assert a.post(f"/agent/jobs/{job['id']}/progress", json={}).status_code == 403
    finish = {"status": "failed", "error_code": "x", "error_message": "y"}
    assert a.post(f"/agent/jobs/{job['id']}/finish", json=finish).status_code == 403
    assert b.post(f"/agent/jobs/{job['id']}/claim", json=token).status_code == 200
    assert b.post(f"/agent/jobs/{job['id']}/finish", json=finish).status_code == 204
    assert b.get(f"/agent/blobs/{xml_sha}").status_code == 403  # finished: no longer its


def test_routing_picks_a_host_that_offers_the_device_labels_and_the_least_work(
    fleet: Fleet, api: Api, fleet_model: Path
) -> None:
    a, b = _agent(api, fleet, "lab-a"), _agent(api, fleet, "lab-b")
    _register(a, [CPU], sku="xeon-6448")
    _register(b, [CPU, GPU], sku="arc-a770")
    model_id = api.upload_model(fleet_model)

    assert api.submit(model_id=model_id, device="GPU")["host"] == "lab-b"
    assert api.submit(model_id=model_id, host_labels={"sku": "xeon-6448"})["host"] == "lab-a"
    # lab-b has a job queued; lab-a has one too; a 60 s job on lab-a makes lab-b sooner.
    api.submit(model_id=model_id, host="lab-a", duration_s=60)
    assert api.submit(model_id=model_id, niter=5)["host"] == "lab-b"

    missing = api.client.post("/jobs", json={"model_id": model_id, "device": "NPU"})
    assert missing.status_code == 422
    error = missing.json()["error"]
    assert error["code"] == "device_not_available"
    assert "lab-a: CPU" in error["message"] and "lab-b: CPU, GPU.0" in error["message"]
    assert error["details"]["available"] == {"lab-a": ["CPU"], "lab-b": ["CPU", "GPU.0"]}
    wrong = api.client.post(
        "/jobs", json={"model_id": model_id, "device": "GPU", "host_labels": {"sku": "xeon-6448"}}
    )
    assert (
        wrong.status_code == 422 and "with labels sku=xeon-6448" in wrong.json()["error"]["message"]
    )
    unknown = api.client.post("/jobs", json={"model_id": model_id, "host": "lab-z"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "host_not_found"

    hosts = api.hosts()
    assert hosts["lab-a"]["state"] == "idle" and hosts["lab-a"]["queue_depth"] == 2
    assert hosts["lab-b"]["queue_depth"] == 2 and hosts["lab-b"]["labels"] == {"sku": "arc-a770"}
    devices = {d["name"]: d["hosts"] for d in api.client.get("/devices").json()}
    assert devices == {"CPU": ["lab-a", "lab-b"], "GPU.0": ["lab-b"]}
    metrics = api.client.get("/metrics").text.splitlines()
    assert 'ovbench_hosts{state="idle"} 2.0' in metrics
    assert 'ovbench_host_queue_depth{host="lab-a"} 2.0' in metrics
    assert 'ovbench_host_up{host="lab-b"} 1.0' in metrics


def test_a_drained_host_takes_no_new_jobs_until_resumed(
    fleet: Fleet, api: Api, fleet_model: Path
) -> None:
    a = _agent(api, fleet, "lab-a")
    _register(a, [CPU])
    model_id = api.upload_model(fleet_model)
    queued = api.submit(model_id=model_id, niter=5)
    drained = api.client.post("/hosts/lab-a/drain")
    assert drained.status_code == 200 and drained.json()["state"] == "draining"
    assert a.post("/agent/heartbeat", json={}).json() == {"draining": True}
    refused = api.client.post("/jobs", json={"model_id": model_id, "host": "lab-a"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "host_unavailable"
    assert "draining" in refused.json()["error"]["message"]
    # What was queued before the drain still runs.
    token = {"claim_token": uuid.uuid4().hex}
    assert a.post(f"/agent/jobs/{queued['id']}/claim", json=token).status_code == 200
    assert api.client.post("/hosts/lab-a/resume").json()["state"] == "busy"
    assert api.submit(model_id=model_id, niter=5)["host"] == "lab-a"
    assert api.client.post("/hosts/nowhere/drain").status_code == 404


def test_simultaneous_submissions_spread_over_idle_hosts(
    fleet: Fleet, api: Api, fleet_model: Path
) -> None:
    # Placement and commit are one step (an advisory lock across replicas): each submission
    # sees the jobs placed before it, so equal jobs alternate instead of piling on one host.
    second = fleet.start_api()
    for name in ("lab-a", "lab-b"):
        _register(_agent(api, fleet, name), [CPU])
    model_id = api.upload_model(fleet_model)
    hosts: list[str] = []

    def submit(via: Api) -> None:
        hosts.append(via.submit(model_id=model_id, duration_s=5)["host"])

    threads = [threading.Thread(target=submit, args=(via,)) for via in [api, second] * 5]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(hosts) == ["lab-a"] * 5 + ["lab-b"] * 5
