"""A sweep in fleet mode: its points routed to one host, each next point of a search
published as the agent reports the one before (the API's advance hands it to the broker)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tests.e2e.conftest import wait_for
from tests.fleet.conftest import Fleet


def test_a_search_sweep_runs_point_after_point_on_an_agent(fleet: Fleet, fleet_model: Path) -> None:
    api = fleet.start_api()
    fleet.start_agent("lab-a", api)
    model_id = api.upload_model(fleet_model)
    response = api.client.post(
        "/sweeps",
        json={
            "model_id": model_id,
            "niter": 20,
            "grid": {"nireq": [1, 2, 4]},
            "strategy": "search",
            "min_gain": 0,  # every step up in nireq runs
        },
    )
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    assert [p["status"] for p in response.json()["points"]] == ["queued", "pending", "pending"]

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = api.client.get(f"/sweeps/{sweep_id}").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    sweep = wait_for(finished, 60, f"sweep {sweep_id} to finish")
    assert sweep["status"] == "succeeded", sweep
    # nireq 2 always runs after 1; 4 runs unless 2 measured slower than 1 (min_gain 0 stops
    # only then; 20 iterations of the tiny model are noisy on a shared host).
    statuses = [p["status"] for p in sweep["points"]]
    assert statuses[:2] == ["succeeded"] * 2, sweep
    if statuses[2] == "skipped":
        assert "minimum gain" in sweep["points"][2]["skip_reason"], sweep["points"][2]
    else:
        assert statuses[2] == "succeeded", sweep
    jobs = [api.job(p["job_id"]) for p in sweep["points"] if p["status"] == "succeeded"]
    assert {job["host"] for job in jobs} == {"lab-a"}
    assert [job["result"]["config"]["nireq"] for job in jobs] == [1, 2, 4][: len(jobs)]
    # one after another: each point was queued only once the one before had ended
    for before, after in itertools.pairwise(jobs):
        assert after["created_at"] >= before["finished_at"]
