"""Webhook deliveries through a kill -9: 100 tiny jobs with a callback_url, a receiver that
answers 500 to the first two attempts of every delivery, and `ovbench serve` killed (-9, with
its worker) in the middle, then restarted on the same data dir.

Prints whether every job's delivery arrived, how many arrived (with a 200) more than once and
whether every duplicate carried the same delivery id, and the latency from the job's end to
the first successful arrival (median / p99). Run: .venv/bin/python bench/webhooks.py
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench._service import Service, sample_model

JOBS = 100
FAIL_FIRST = 2
KILL_AFTER_ENDED = 50
DEADLINE_S = 600


class Receiver:
    """Records every POST; 500 to the first FAIL_FIRST attempts of each delivery id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = defaultdict(int)
        self.ok: list[tuple[str, str, float]] = []  # (delivery id, job id, arrival unix s)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived = time.time()
                delivery = self.headers["X-Ovbench-Delivery"]
                with receiver.lock:
                    receiver.attempts[delivery] += 1
                    status = 500 if receiver.attempts[delivery] <= FAIL_FIRST else 200
                    if status == 200:
                        receiver.ok.append((delivery, json.loads(body)["id"], arrived))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _ended(svc: Service) -> int:
    total = 0
    for status in ("succeeded", "failed", "cancelled"):
        response = svc.client.get("/jobs", params={"status": status, "limit": 1})
        total += int(response.headers["X-Total-Count"])
    return total


def _kill_9(svc: Service) -> None:
    """SIGKILL the serve process and its worker (nothing gets to clean up)."""
    assert svc.proc is not None
    worker = svc.client.get("/readyz").json()["worker"]
    os.kill(svc.proc.pid, signal.SIGKILL)
    if worker:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker["pid"], signal.SIGKILL)
    svc.proc.wait()


def main() -> None:
    receiver = Receiver()
    env = {
        "OVBENCH_WEBHOOK_ALLOW": f"127.0.0.1:{receiver.port}",
        "OVBENCH_WEBHOOK_SECRET": "bench-secret",
    }
    xml = sample_model("tiny_cnn")
    url = f"http://127.0.0.1:{receiver.port}/hook"
    first = Service(env=env)
    data_dir = first.data_dir
    with first as svc:
        model_id = svc.upload_model(xml)
        job_ids = [
            svc.submit(
                {
                    "model_id": model_id,
                    "device": "CPU",
                    "api": "sync",
                    "niter": 5,
                    "callback_url": url,
                }
            )
            for _ in range(JOBS)
        ]
        while _ended(svc) < KILL_AFTER_ENDED:
            time.sleep(0.05)
        ended_at_kill = _ended(svc)
        with receiver.lock:
            ok_at_kill = len({d for d, _, _ in receiver.ok})
        _kill_9(svc)
    print(f"kill -9 after {ended_at_kill} of {JOBS} jobs ended ({ok_at_kill} delivered by then)")
    restarted_at = time.monotonic()
    with Service(data_dir=data_dir, env=env) as svc:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            jobs = [svc.client.get(f"/jobs/{job_id}").json() for job_id in job_ids]
            deliveries = [d for job in jobs for d in job["deliveries"]]
            settled = all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs)
            if (
                settled
                and len(deliveries) == JOBS
                and all(d["state"] != "pending" for d in deliveries)
            ):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"not settled within {DEADLINE_S} s of the restart")
            time.sleep(0.5)
    settle_s = time.monotonic() - restarted_at
    statuses = defaultdict(int)
    for job in jobs:
        statuses[job["status"]] += 1
    states = defaultdict(int)
    for d in deliveries:
        states[d["state"]] += 1
    by_delivery: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for delivery, job_id, arrived in receiver.ok:
        by_delivery[delivery].append((job_id, arrived))
    expected = {d["id"]: job["id"] for job in jobs for d in job["deliveries"]}
    arrived_all = set(expected) <= set(by_delivery)
    duplicates = {d: hits for d, hits in by_delivery.items() if len(hits) > 1}
    same_id = all(
        expected.get(d) == job_id for d, hits in by_delivery.items() for job_id, _ in hits
    )
    latencies = []
    for job in jobs:
        (d,) = job["deliveries"]
        end = datetime.fromisoformat(job["finished_at"]).timestamp()
        latencies.append(min(t for _, t in by_delivery[d["id"]]) - end)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"jobs: {dict(statuses)}; deliveries: {dict(states)}; settled {settle_s:.1f} s after the restart"
    )
    print(f"every delivery arrived (a 200 for each of the {len(expected)} ids): {arrived_all}")
    print(
        f"arrived more than once: {len(duplicates)} deliveries ({sum(len(h) - 1 for h in duplicates.values())} extra arrivals)"
    )
    print(f"every arrival of a delivery id was of its own job (duplicates share the id): {same_id}")
    attempts = sorted(receiver.attempts.values())
    print(
        f"attempts per delivery: min {attempts[0]}, median {statistics.median(attempts)}, max {attempts[-1]}"
    )
    print(
        f"latency job end -> first 200 (2 failures first, default backoff 1 s doubling): "
        f"median {statistics.median(latencies):.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s"
    )
    receiver.server.shutdown()


if __name__ == "__main__":
    main()
