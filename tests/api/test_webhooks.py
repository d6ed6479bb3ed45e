"""Webhooks through the API and the real sender thread, to a real HTTP receiver on 127.0.0.1:
signed bodies, retries with one delivery id, the allow-list, a sweep's one callback."""

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
from app.services.webhooks import WebhookSender
from app.settings import Settings
from app.store import Store
from tests.api.conftest import model_files

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
    return Settings(
        data_dir=tmp_path / "data",
        max_queue=20,
        run_lock_path=tmp_path / "run.lock",
        webhook_allow=f"example.org,127.0.0.1:{receiver.port}",
        webhook_secret=SECRET,
        webhook_first_retry_s=0.05,
        webhook_poll_interval_s=0.02,
        **extra,
    )


@pytest.fixture
def make_client(tmp_path: Path, receiver: Receiver) -> Iterator[Callable[..., TestClient]]:
    """The app with its webhook sender thread running (as `ovbench serve` starts it)."""
    opened: list[tuple[TestClient, Any]] = []

    def make(**extra: Any) -> TestClient:
        app = create_app(_settings(tmp_path, receiver, **extra))
        app.state.store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
        test_client = TestClient(app, raise_server_exceptions=False).__enter__()
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
    assert sent == client.get(f"/sweeps/{sweep['id']}").json() | {"timing": sent["timing"]}
    assert store.deliveries.for_subjects([j["id"] for j in jobs]) == {}
    assert client.app.state.webhooks.run_once() == 0  # type: ignore[attr-defined]
    assert len(receiver.received) == 1
