"""Webhooks through the real `ovbench serve`: a succeeded job is delivered, and a delivery
left pending by a kill -9 is delivered by the restarted service, with the same id."""

from __future__ import annotations

import hashlib
import hmac
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_webhooks import Receiver
from tests.e2e.conftest import Server, uploaded_model_id, wait_for

SECRET = "e2e-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _env(receiver: Receiver) -> dict[str, str]:
    return {
        "OVBENCH_WEBHOOK_ALLOW": f"127.0.0.1:{receiver.port}",
        "OVBENCH_WEBHOOK_SECRET": SECRET,
        "OVBENCH_WEBHOOK_FIRST_RETRY_S": "0.2",
        "OVBENCH_WEBHOOK_MAX_RETRY_S": "1",
    }


def _delivery(server: Server, job_id: str) -> dict[str, Any] | None:
    deliveries = server.job(job_id)["deliveries"]
    return deliveries[0] if deliveries else None


def test_a_pending_delivery_survives_kill_9_and_is_delivered_after_restart(
    make_server: Callable[..., Server],
    receiver: Receiver,
    e2e_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    receiver.fail_first = 1_000_000  # down while the first service runs
    data_dir = tmp_path / "data"
    server = make_server(data_dir=data_dir, env=_env(receiver))
    model_id = uploaded_model_id(server, e2e_files[0])
    job = server.submit(model_id=model_id, niter=5, callback_url=receiver.url)
    server.wait_job(job["id"], statuses=("succeeded",), timeout_s=60)
    failed = wait_for(
        lambda: (d := _delivery(server, job["id"])) and d["attempts"] >= 2 and d,
        30,
        "two failed attempts",
    )
    assert failed["state"] == "pending" and failed["last_status_code"] == 500

    server.stop(signal.SIGKILL)
    server.kill_group()  # its worker too: nothing of it is left
    attempts_before = len(receiver.received)
    receiver.fail_first = 0  # the receiver is back
    restarted = make_server(data_dir=data_dir, env=_env(receiver))
    done = wait_for(
        lambda: (d := _delivery(restarted, job["id"])) and d["state"] == "delivered" and d,
        30,
        "the delivery after the restart",
    )
    assert done["id"] == failed["id"] and done["attempts"] > failed["attempts"]
    assert done["event"] == "job.succeeded"
    headers, body, status = receiver.received[-1]
    assert status == 200 and len(receiver.received) > attempts_before
    assert {h["x-ovbench-delivery"] for h, _, _ in receiver.received} == {done["id"]}
    signed = f"{done['id']}.{headers['x-ovbench-timestamp']}.".encode() + body
    assert headers["x-ovbench-signature"] == (
        "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    )
    assert len({b for _, b, _ in receiver.received}) == 1  # the same bytes across the restart
    final = restarted.job(job["id"])
    assert final["status"] == "succeeded" and final["result"]["throughput_fps"] > 0
