"""Fleet mode's guarantees (README: Fleet), each against the real PostgreSQL, RabbitMQ, API and
agent processes: a broken guarantee fails its test."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from app.dispatch.broker import TASK_NAME, host_queue, make_celery
from tests.e2e.conftest import wait_for
from tests.fleet.conftest import HEARTBEAT_TIMEOUT_S, START_DEADLINE_S, SWEEP_INTERVAL_S, Fleet
from tests.servers import pid_alive, process_tree

SIMULATED = {"OVBENCH_AGENT_SIMULATE": "true"}


def test_1_kill9_of_the_api_during_submissions_loses_no_accepted_job(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    fleet.start_agent("sim-a", api, **SIMULATED)
    model_id = api.upload_model(fleet_model)
    accepted: list[str] = []
    stop = threading.Event()

    def submit_until_refused() -> None:
        with httpx.Client(base_url=api.url, headers=api.client.headers, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/jobs", json={"model_id": model_id, "niter": 1})
                except httpx.TransportError:
                    return  # the API died under us: that request had no 202
                if response.status_code == 202:
                    accepted.append(response.json()["id"])

    threads = [threading.Thread(target=submit_until_refused) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(accepted) >= 40, 60, "40 accepted submissions")
    api.kill9()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    survivor = fleet.start_api(port=api.port)  # where the agent finds it again
    for job_id in accepted:  # every 202 is in the database and runs
        assert survivor.wait_job(job_id, timeout_s=60)["status"] == "succeeded"


def test_2_a_crash_between_commit_and_publish_is_repaired_by_the_sweeper(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    fleet.start_agent("lab-a", api)
    model_id = api.upload_model(fleet_model)
    crashing = fleet.start_api(extra_env={"OVBENCH_FAULT": "before_publish"})
    key = {"Idempotency-Key": "crash-before-publish"}
    body = {"model_id": model_id, "niter": 5}
    try:
        crashing.client.post("/jobs", json=body, headers=key)
        raise AssertionError("the API answered, but its fault point should have killed it")
    except httpx.TransportError:
        pass  # killed after the commit, before the publish: no answer
    assert crashing.process is not None and crashing.process.wait(timeout=10) == -signal.SIGKILL
    replayed = api.client.post("/jobs", json=body, headers=key)  # the same job, committed
    assert replayed.status_code == 202 and replayed.headers["Idempotent-Replayed"] == "true"
    job = replayed.json()
    assert api.wait_job(job["id"], timeout_s=30)["status"] == "succeeded"
    assert "sweeper: publishing 1 queued job(s) again" in api.log()


def test_2_a_job_runs_at_most_once_when_its_message_is_delivered_twice(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    agent = fleet.start_agent("lab-a", api)
    model_id = api.upload_model(fleet_model)
    job = api.submit(model_id=model_id, niter=200)
    running = api.wait_job(job["id"], ("running", "succeeded"))
    celery = make_celery(fleet.broker_url)
    try:
        for _ in range(2):  # two more deliveries of the same "run job <id>"
            celery.send_task(
                TASK_NAME,
                args=[job["id"]],
                queue=host_queue("lab-a"),
                routing_key=host_queue("lab-a"),
            )
    finally:
        celery.close()
    done = api.wait_job(job["id"])
    assert done["status"] == "succeeded"
    wait_for(lambda: fleet.queue_messages("lab-a") == 0, 30, "the duplicates to be consumed")
    wait_for(lambda: agent.log().count(f"job {job['id']}: not run") == 2, 10, "two drops")
    assert api.job(job["id"])["started_at"] == running["started_at"] == done["started_at"]
    assert agent.log().count(f"job {job['id']}: succeeded") == 1


def _measuring(fleet: Fleet, fleet_model: Path, agent_name: str) -> tuple[object, dict]:
    api = fleet.apis[0] if fleet.apis else fleet.start_api()
    agent = fleet.start_agent(agent_name, api)
    model_id = api.upload_model(fleet_model)
    job = api.submit(model_id=model_id, duration_s=60)

    def measuring() -> dict | None:
        current = api.job(job["id"])
        return current if current["progress"]["iterations"] > 0 else None

    return agent, wait_for(measuring, 60, "the job to measure")


def test_3_an_agent_killed_mid_job_fails_it_worker_lost_within_the_heartbeat_timeout(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    agent, job = _measuring(fleet, fleet_model, "lab-a")
    assert agent.process is not None
    run_processes = [p for p in process_tree([agent.process.pid]) if p != agent.process.pid]
    assert run_processes, "the job runs in a process of its own"
    os.kill(agent.process.pid, signal.SIGKILL)  # the agent alone, not its run process
    killed_at = time.monotonic()
    failed = api.wait_job(job["id"], timeout_s=30)
    took_s = time.monotonic() - killed_at
    assert failed["status"] == "failed" and failed["error"]["code"] == "worker_lost", failed
    assert took_s <= HEARTBEAT_TIMEOUT_S + SWEEP_INTERVAL_S + 1.5, took_s
    # The orphaned run process notices and exits: no benchmark runs on without its agent.
    wait_for(lambda: not any(pid_alive(p) for p in run_processes), 15, "the run process to exit")


def test_3_an_agent_restarted_at_once_fails_what_it_left_running_and_works_on(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    agent, job = _measuring(fleet, fleet_model, "lab-a")
    agent.kill9()
    agent.start()  # same name: its registration settles the job its predecessor ran
    failed = api.wait_job(job["id"], timeout_s=10)
    assert failed["error"]["code"] == "worker_lost" and "restarted" in failed["error"]["message"]
    # The redelivered message finds the job finished, and the agent takes new work.
    wait_for(lambda: f"job {job['id']}: not run" in agent.log(), 30, "the redelivery dropped")
    again = api.submit(model_id=job["model_id"], niter=5)
    assert api.wait_job(again["id"])["status"] == "succeeded"


def test_4_rabbitmq_killed_and_restarted_every_queued_job_still_runs(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    fleet.start_agent("lab-a", api)
    model_id = api.upload_model(fleet_model)
    first = api.submit(model_id=model_id, duration_s=3)
    queued = [api.submit(model_id=model_id, niter=5) for _ in range(3)]
    api.wait_job(first["id"], ("running",))
    fleet.rabbitmq.kill()
    while_down = [api.submit(model_id=model_id, niter=5) for _ in range(2)]  # still 202
    time.sleep(1.0)  # the agent and the API notice the broker is gone
    fleet.rabbitmq.start()
    for job in [first, *queued, *while_down]:
        assert api.wait_job(job["id"], timeout_s=90)["status"] == "succeeded", job["id"]


def test_4_postgresql_stopped_the_api_answers_503_then_recovers(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    fleet.start_agent("lab-a", api)
    model_id = api.upload_model(fleet_model)
    accepted = api.submit(model_id=model_id, duration_s=3)
    api.wait_job(accepted["id"], ("running",))
    fleet.postgres.stop("immediate")
    try:
        for method, path, body in (
            ("GET", f"/jobs/{accepted['id']}", None),
            ("GET", "/hosts", None),
            ("POST", "/jobs", {"model_id": model_id, "niter": 5}),
        ):
            response = api.client.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"]["code"] == "database_unavailable"
        time.sleep(HEARTBEAT_TIMEOUT_S + 1)  # longer than a heartbeat timeout
    finally:
        fleet.postgres.start()
    # The job that ran through the outage is stored (the agent retried), not worker_lost.
    done = api.wait_job(accepted["id"], timeout_s=60)
    assert done["status"] == "succeeded", done
    later = api.submit(model_id=model_id, niter=5)
    assert api.wait_job(later["id"])["status"] == "succeeded"


def test_5_cancel_reaches_a_running_job_on_an_agent_within_2_s(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    _, job = _measuring(fleet, fleet_model, "lab-a")
    asked = time.monotonic()
    assert api.client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    cancelled = api.wait_job(job["id"], timeout_s=10)
    took_s = time.monotonic() - asked
    assert cancelled["status"] == "cancelled" and took_s < 2.0, (cancelled["status"], took_s)
    assert cancelled["result"]["status"] == "cancelled"  # the partial result, as on one host


def test_6_a_stopped_agent_goes_offline_and_its_queued_jobs_fail_host_unavailable(
    fleet: Fleet, fleet_model: Path
) -> None:
    api = fleet.start_api()
    agent, running = _measuring(fleet, fleet_model, "lab-a")
    waiting = api.submit(model_id=running["model_id"], niter=5)  # queued behind it
    assert waiting["host"] == "lab-a" and waiting["status"] == "queued"
    assert agent.process is not None
    os.killpg(agent.process.pid, signal.SIGSTOP)  # the agent's processes stop, not exit
    try:
        host = api.wait_host("lab-a", ("offline",), timeout_s=HEARTBEAT_TIMEOUT_S + 3)
        assert host["heartbeat_age_s"] > HEARTBEAT_TIMEOUT_S
        assert api.wait_job(running["id"], timeout_s=10)["error"]["code"] == "worker_lost"
        failed = api.wait_job(waiting["id"], timeout_s=START_DEADLINE_S + 5)
        assert failed["error"]["code"] == "host_unavailable", failed
        refused = api.client.post("/jobs", json={"model_id": running["model_id"], "niter": 5})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "device_not_available"
    finally:
        os.killpg(agent.process.pid, signal.SIGCONT)
