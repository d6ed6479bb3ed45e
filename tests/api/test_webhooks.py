"""Webhooks through the API and the real sender thread, to a real HTTP receiver on 127.0.0.1:
signed bodies, retries with one delivery id, the allow-list, a sweep's one callback and its
deliveries on GET /sweeps, a rerun's callback, and deliveries of deleted jobs and sweeps (sent
when their body is stored, then removed by the retention pass)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

from app.api import create_app
from app.engine.spec import DeviceInfo
from app.serve import _retention_loop
from app.services.webhooks import WebhookSender
from app.settings import Settings
from app.store import Store
from tests.api.conftest import model_files, run_queue

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP server in a thread that records every POST and answers 500 to the first
    `fail_first` attempts of each delivery id, then 200."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    seen = sum(
                        1
                        for h, _, _ in receiver.received
                        if h["x-ovbench-delivery"] == headers["x-ovbench-delivery"]
                    )
                    status = 500 if seen < receiver.fail_first else 200
                    receiver.received.append((headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _settings(tmp_path: Path, receiver: Receiver, **extra: Any) -> Settings:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "max_queue": 20,
        "run_lock_path": tmp_path / "run.lock",
        "webhook_allow": f"example.org,127.0.0.1:{receiver.port}",
        "webhook_secret": SECRET,
        "webhook_first_retry_s": 0.05,
        "webhook_poll_interval_s": 0.02,
    }
    return Settings(**(defaults | extra))


@pytest.fixture
def make_client(tmp_path: Path, receiver: Receiver) -> Iterator[Callable[..., TestClient]]:
    """The app with its webhook sender thread running (as `ovbench serve` starts it); with
    `sender=False` not started: the test drives `app.state.webhooks.run_once()` itself."""
    opened: list[tuple[TestClient, Any]] = []

    def make(sender: bool = True, **extra: Any) -> TestClient:
        app = create_app(_settings(tmp_path, receiver, **extra))
        app.state.store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
        test_client = TestClient(app, raise_server_exceptions=False).__enter__()
        if sender:
            app.state.webhooks.start()
        opened.append((test_client, app))
        return test_client

    yield make
    for test_client, app in opened:
        app.state.webhooks.stop()
        test_client.__exit__(None, None, None)
        app.state.store.close()


def _model_id(client: TestClient, tiny_model: Path) -> str:
    response = client.post("/models", files=model_files(tiny_model))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _submit(client: TestClient, model_id: str, url: str) -> dict[str, Any]:
    response = client.post(
        "/jobs", json={"model_id": model_id, "device": "CPU", "niter": 1, "callback_url": url}
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def _settled(client: TestClient, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
    deliveries = job["deliveries"]
    return job if deliveries and all(d["state"] != "pending" for d in deliveries) else None


def test_a_cancelled_job_is_posted_once_signed_with_the_secret_over_id_timestamp_and_body(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    client = make_client()
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    assert job["params"]["callback_url"] == receiver.url and job["deliveries"] == []
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    final = wait_for(lambda: _settled(client, job["id"]), 10, "the delivery")

    ((headers, body, status),) = receiver.received
    (delivery,) = final["deliveries"]
    assert status == 200 and delivery["state"] == "delivered" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200 and delivery["delivered_at"] is not None
    assert delivery["next_attempt_at"] is None
    assert headers["x-ovbench-delivery"] == delivery["id"]
    assert headers["x-ovbench-event"] == "job.cancelled" == delivery["event"]
    assert headers["content-type"] == "application/json"
    timestamp = headers["x-ovbench-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signed = f"{delivery['id']}.{timestamp}.".encode() + body
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-ovbench-signature"], expected)
    wrong = "sha256=" + hmac.new(b"other", signed, hashlib.sha256).hexdigest()
    assert headers["x-ovbench-signature"] != wrong
    # the body: the job as GET /jobs/{id} shows it, without its deliveries
    sent = json.loads(body)
    assert sent["id"] == job["id"] and sent["status"] == "cancelled"
    assert sent == {k: v for k, v in final.items() if k != "deliveries"}


def test_a_receiver_failing_twice_gets_the_third_attempt_with_the_same_id_and_bytes(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    receiver.fail_first = 2
    client = make_client()
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    final = wait_for(lambda: _settled(client, job["id"]), 20, "the third attempt")

    (delivery,) = final["deliveries"]
    assert (delivery["state"], delivery["attempts"], delivery["last_status_code"]) == (
        "delivered",
        3,
        200,
    )
    assert [status for _, _, status in receiver.received] == [500, 500, 200]
    assert {h["x-ovbench-delivery"] for h, _, _ in receiver.received} == {delivery["id"]}
    assert [h["x-ovbench-attempt"] for h, _, _ in receiver.received] == ["1", "2", "3"]
    assert len({body for _, body, _ in receiver.received}) == 1  # byte-identical retries


def test_a_delivery_is_given_up_after_the_retry_window(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    receiver.fail_first = 1_000_000
    client = make_client(webhook_retry_for_s=0.5)
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    final = wait_for(lambda: _settled(client, job["id"]), 20, "the delivery to be given up")
    (delivery,) = final["deliveries"]
    assert delivery["state"] == "failed" and delivery["last_status_code"] == 500
    assert delivery["attempts"] == len(receiver.received) >= 2
    assert delivery["delivered_at"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",  # not listed
        "http://127.0.0.1/hook",  # the host is listed with another port only
        "http://127.0.0.1:1/hook",
        "http://evil.example.org/hook",  # a subdomain of a listed name is another host
    ],
)
def test_a_callback_to_a_host_not_allowed_is_422_naming_the_setting(
    make_client: Callable[..., TestClient], tiny_model: Path, url: str
) -> None:
    client = make_client()
    model_id = _model_id(client, tiny_model)
    for path, extra in (("/jobs", {}), ("/sweeps", {"grid": {"nireq": [1, 2]}})):
        response = client.post(
            path, json={"model_id": model_id, "niter": 1, "callback_url": url, **extra}
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "callback_not_allowed"
        assert "OVBENCH_WEBHOOK_ALLOW" in error["message"]
    assert client.get("/jobs").json() == [] and client.get("/sweeps").json() == []


def test_a_callback_that_is_not_http_is_422(
    make_client: Callable[..., TestClient], tiny_model: Path
) -> None:
    client = make_client()
    model_id = _model_id(client, tiny_model)
    for url in ("file:///etc/passwd", "example.org/hook", "http://user:pw@example.org/"):
        response = client.post("/jobs", json={"model_id": model_id, "callback_url": url})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["details"][0]["loc"] == ["body", "callback_url"]


def test_the_sender_checks_the_allow_list_again_before_calling(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path, tmp_path: Path
) -> None:
    client = make_client()
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    client.app.state.webhooks.stop()  # type: ignore[attr-defined]
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    # the admin removed the host meanwhile: this sender's settings no longer allow it
    narrower = _settings(tmp_path, receiver).model_copy(update={"webhook_allow": "example.org"})
    sender = WebhookSender(store, narrower, lambda kind, ref: b"{}")
    assert sender.run_once() == 1
    (delivery,) = client.get(f"/jobs/{job['id']}").json()["deliveries"]
    assert delivery["state"] == "failed" and "OVBENCH_WEBHOOK_ALLOW" in delivery["last_error"]
    assert receiver.received == []


def test_a_sweep_posts_its_sweep_json_once_at_its_end_and_its_points_none(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    client = make_client()
    model_id = _model_id(client, tiny_model)
    response = client.post(
        "/sweeps",
        json={
            "model_id": model_id,
            "niter": 1,
            "grid": {"nireq": [1, 2, 4]},
            "callback_url": receiver.url,
        },
    )
    assert response.status_code == 202, response.text
    sweep = response.json()
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    jobs = client.get("/jobs").json()
    assert jobs and all("callback_url" not in j["params"] for j in jobs)
    assert store.deliveries.for_subjects([sweep["id"]]) == {}
    assert client.post(f"/sweeps/{sweep['id']}/cancel").status_code == 200

    def delivered() -> bool:
        rows = store.deliveries.for_subjects([sweep["id"]]).get(sweep["id"], [])
        return bool(rows) and all(r.state == "delivered" for r in rows)

    wait_for(delivered, 10, "the sweep's delivery")
    ((headers, body, _),) = receiver.received
    assert headers["x-ovbench-event"] == "sweep.cancelled"
    sent = json.loads(body)
    assert sent["id"] == sweep["id"] and sent["status"] == "cancelled"
    read = client.get(f"/sweeps/{sweep['id']}").json()
    assert "deliveries" not in sent  # they change as this very delivery goes
    (delivery,) = read.pop("deliveries")
    assert (delivery["id"], delivery["state"]) == (headers["x-ovbench-delivery"], "delivered")
    assert sent == read | {"timing": sent["timing"]}
    assert store.deliveries.for_subjects([j["id"] for j in jobs]) == {}
    assert client.app.state.webhooks.run_once() == 0  # type: ignore[attr-defined]
    assert len(receiver.received) == 1


def test_a_sweeps_deliveries_show_on_get_and_in_the_list_as_they_go(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    receiver.fail_first = 1
    client = make_client(sender=False)
    sender: WebhookSender = client.app.state.webhooks  # type: ignore[attr-defined]
    model_id = _model_id(client, tiny_model)
    body = {"model_id": model_id, "niter": 1, "grid": {"nireq": [1, 2]}}
    quiet = client.post("/sweeps", json=body).json()  # no callback: no deliveries
    response = client.post("/sweeps", json=body | {"callback_url": receiver.url})
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert sweep["deliveries"] == []
    assert client.get(f"/sweeps/{sweep['id']}").json()["deliveries"] == []
    assert client.post(f"/sweeps/{sweep['id']}/cancel").status_code == 200

    def shown() -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        one = client.get(f"/sweeps/{sweep['id']}").json()
        listed = {s["id"]: s["deliveries"] for s in client.get("/sweeps").json()}
        assert listed[sweep["id"]] == one["deliveries"] and listed[quiet["id"]] == []
        return one, listed

    (pending,) = shown()[0]["deliveries"]
    assert (pending["event"], pending["url"], pending["state"]) == (
        "sweep.cancelled",
        receiver.url,
        "pending",
    )
    assert pending["attempts"] == 0 and pending["next_attempt_at"] is not None
    assert sender.run_once() == 1  # the receiver answers 500: due again
    (retried,) = shown()[0]["deliveries"]
    assert (retried["id"], retried["state"], retried["attempts"]) == (pending["id"], "pending", 1)
    assert (retried["last_status_code"], retried["last_error"]) == (500, "HTTP 500")

    def settled() -> dict[str, Any] | None:
        sender.run_once()
        (delivery,) = shown()[0]["deliveries"]
        return delivery if delivery["state"] != "pending" else None

    done = wait_for(settled, 10, "the retry")
    assert (done["id"], done["state"], done["attempts"]) == (pending["id"], "delivered", 2)
    assert done["next_attempt_at"] is None and done["delivered_at"] is not None
    assert [h["x-ovbench-delivery"] for h, _, _ in receiver.received] == [pending["id"]] * 2


def test_a_rerun_carries_the_callback_and_its_end_is_delivered_with_its_id(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    client = make_client()
    app: Any = client.app
    original = _submit(client, _model_id(client, tiny_model), receiver.url)
    assert run_queue(app.state.settings, app.state.store) == 1
    wait_for(lambda: _settled(client, original["id"]), 10, "the original's delivery")

    response = client.post(f"/jobs/{original['id']}/rerun")
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert rerun["params"]["callback_url"] == receiver.url and rerun["deliveries"] == []
    assert run_queue(app.state.settings, app.state.store) == 1
    final = wait_for(lambda: _settled(client, rerun["id"]), 10, "the rerun's delivery")

    assert final["status"] == "succeeded", final["error"]
    (delivery,) = final["deliveries"]
    assert delivery["state"] == "delivered" and delivery["event"] == "job.succeeded"
    first, second = (json.loads(body) for _, body, _ in receiver.received)
    assert first["id"] == original["id"] and first["rerun_of"] is None
    assert second["id"] == rerun["id"] and second["rerun_of"] == original["id"]
    assert second == {k: v for k, v in final.items() if k != "deliveries"}
    assert receiver.received[1][0]["x-ovbench-delivery"] == delivery["id"]


def test_a_rerun_whose_callback_host_is_no_longer_allowed_is_the_422_of_a_submission(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    client = make_client()
    model_id = _model_id(client, tiny_model)
    original = _submit(client, model_id, receiver.url)
    assert client.post(f"/jobs/{original['id']}/cancel").status_code == 200
    # the admin removed the receiver's host since; the same data dir, a new server
    narrower = make_client(webhook_allow="example.org")
    rerun = narrower.post(f"/jobs/{original['id']}/rerun")
    submitted = narrower.post(
        "/jobs", json={"model_id": model_id, "niter": 1, "callback_url": receiver.url}
    )
    assert rerun.status_code == submitted.status_code == 422, rerun.text
    assert rerun.json() == submitted.json()
    assert rerun.json()["error"]["code"] == "callback_not_allowed"
    assert [job["id"] for job in narrower.get("/jobs").json()] == [original["id"]]
    # still allowed: the rerun goes
    assert client.post(f"/jobs/{original['id']}/rerun").status_code == 202


def _rows(client: TestClient, subject_id: str) -> list[Any]:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    return store.deliveries.for_subjects([subject_id]).get(subject_id, [])


def _retention_removes(client: TestClient, subject_id: str) -> None:
    """Run serve's periodic retention loop (every `retention_interval_s`) until the
    deliveries of `subject_id` are gone."""
    app: Any = client.app
    stop = threading.Event()
    loop = threading.Thread(
        target=_retention_loop, args=(app.state.store, app.state.settings, stop), daemon=True
    )
    loop.start()
    try:
        wait_for(lambda: _rows(client, subject_id) == [], 10, "the retention pass")
    finally:
        stop.set()
        loop.join(timeout=10)


def test_deleting_a_job_or_sweep_deletes_its_delivered_deliveries(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    client = make_client()
    model_id = _model_id(client, tiny_model)
    job = _submit(client, model_id, receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    wait_for(lambda: _settled(client, job["id"]), 10, "the job's delivery")
    kept = _submit(client, model_id, receiver.url)  # not deleted
    client.post(f"/jobs/{kept['id']}/cancel")
    wait_for(lambda: _settled(client, kept["id"]), 10, "the other job's delivery")
    sweep = client.post(
        "/sweeps",
        json={
            "model_id": model_id,
            "niter": 1,
            "grid": {"nireq": [1, 2]},
            "callback_url": receiver.url,
        },
    ).json()
    client.post(f"/sweeps/{sweep['id']}/cancel")
    wait_for(
        lambda: (
            [d["state"] for d in client.get(f"/sweeps/{sweep['id']}").json()["deliveries"]]
            == ["delivered"]
        ),
        10,
        "the sweep's delivery",
    )
    assert len(_rows(client, job["id"])) == len(_rows(client, sweep["id"])) == 1

    assert client.delete(f"/jobs/{job['id']}").status_code == 204
    assert client.delete(f"/sweeps/{sweep['id']}").status_code == 204
    assert _rows(client, job["id"]) == [] and _rows(client, sweep["id"]) == []
    assert [d.state for d in _rows(client, kept["id"])] == ["delivered"]
    assert len(receiver.received) == 3


def test_a_job_deleted_while_its_delivery_is_retried_still_gets_its_body_delivered(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    receiver.fail_first = 1
    client = make_client(sender=False, retention_interval_s=0.05)
    app: Any = client.app
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    final = client.get(f"/jobs/{job['id']}").json()
    assert app.state.webhooks.run_once() == 1  # 500: the body is stored, due again
    (row,) = _rows(client, job["id"])
    assert (row.state, row.attempts) == ("pending", 1)

    assert client.delete(f"/jobs/{job['id']}").status_code == 204
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    assert [r.state for r in _rows(client, job["id"])] == ["pending"]  # it keeps going

    def delivered() -> bool:
        app.state.webhooks.run_once()
        return [r.state for r in _rows(client, job["id"])] == ["delivered"]

    wait_for(delivered, 10, "the retry after the delete")
    (_, first, _), (_, second, status) = receiver.received
    assert status == 200 and first == second  # the job's final JSON, as stored
    sent = json.loads(second)
    assert sent["id"] == job["id"] and sent["status"] == "cancelled"
    assert sent == {k: v for k, v in final.items() if k != "deliveries"}

    # the periodic retention pass of `ovbench serve` removes it, now that it is final
    _retention_removes(client, job["id"])


def test_a_job_deleted_before_its_first_attempt_is_given_up_then_removed_by_retention(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    client = make_client(sender=False, retention_interval_s=0.05)
    app: Any = client.app
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    assert client.delete(f"/jobs/{job['id']}").status_code == 204
    (row,) = _rows(client, job["id"])
    assert (row.state, row.attempts) == ("pending", 0)  # no body yet: nothing to send

    assert app.state.webhooks.run_once() == 1
    (row,) = _rows(client, job["id"])
    assert (row.state, row.last_error) == ("failed", "the job was deleted")
    assert receiver.received == []
    _retention_removes(client, job["id"])


def test_the_sender_reads_the_store_only_after_a_commit_or_when_a_retry_is_due(
    make_client: Callable[..., TestClient], receiver: Receiver, tiny_model: Path
) -> None:
    """Between passes the sender only reads the change token: no query while nothing is
    committed, one after a commit, and the retry goes out at its due time with no commit."""
    receiver.fail_first = 1
    client = make_client(webhook_first_retry_s=0.6)
    store = client.app.state.store  # type: ignore[attr-defined]
    calls: list[str] = []
    for name in ("next_due_at", "claim_due"):
        original = getattr(store.deliveries, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        setattr(store.deliveries, name, counted)
    job = _submit(client, _model_id(client, tiny_model), receiver.url)
    client.post(f"/jobs/{job['id']}/cancel")
    wait_for(lambda: len(receiver.received) == 1, 10, "the first attempt (answered 500)")
    time.sleep(0.1)  # the pass has recorded the failure and read the next due time

    before = len(calls)
    time.sleep(0.3)  # 15 looks at 0.02 s; no commit, the retry not due yet
    assert calls[before:] == []
    final = wait_for(lambda: _settled(client, job["id"]), 10, "the retry")
    assert [status for _, _, status in receiver.received] == [500, 200]
    assert final["deliveries"][0]["attempts"] == 2

    time.sleep(0.1)
    before = len(calls)
    store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Another CPU")])  # a commit
    wait_for(lambda: "next_due_at" in calls[before:], 5, "a read after the commit")
    time.sleep(0.2)
    assert calls[before:] == ["next_due_at"]  # nothing due: no claim
