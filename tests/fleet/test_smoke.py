"""A first fleet run: one API, one agent, a tiny CNN job routed, run and reported."""

from __future__ import annotations

from pathlib import Path

from tests.fleet.conftest import Fleet


def test_a_job_runs_on_an_agent_and_says_which_host(fleet: Fleet, fleet_model: Path) -> None:
    api = fleet.start_api()
    fleet.start_agent("lab-a", api)
    model_id = api.upload_model(fleet_model)
    job = api.submit(model_id=model_id, niter=20)
    assert job["host"] == "lab-a"
    done = api.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["host"]["name"] == "lab-a"
    assert done["result"]["iterations"] == 20
