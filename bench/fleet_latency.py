"""Submit-to-start latency through the broker, with real agents running tiny CNN jobs.

A fleet on this machine (scripts/local_fleet.py: PostgreSQL, RabbitMQ, one API, two agents),
then JOBS jobs of the tiny CNN (niter 20), one at a time so that no job waits behind another:
each one's start is its submission's way through the API's commit, the publisher, RabbitMQ,
the agent's Celery consumer and its claim. Submit-to-start = the job's `started_at` minus its
`created_at`, both stamped by the API in the database. Target: median under 300 ms.

    .venv/bin/python bench/fleet_latency.py [--jobs 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.local_fleet import LocalFleet  # noqa: E402
from tests.factories import write_tiny_model  # noqa: E402

TARGET_MS = 300.0


def _ms(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    model_xml = write_tiny_model(Path(tempfile.mkdtemp(prefix="fleet-latency-")))
    with LocalFleet(["lab-a", "lab-b"]) as fleet:
        model_id = fleet.upload_model(model_xml)
        starts: list[float] = []
        hosts: dict[str, int] = {}
        for _ in range(args.jobs):
            job = fleet.client.post("/jobs", json={"model_id": model_id, "niter": 20}).json()
            deadline = time.monotonic() + 60
            while True:
                current = fleet.client.get(f"/jobs/{job['id']}").json()
                if current["status"] in ("succeeded", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job['id']} did not finish: {current['status']}")
                time.sleep(0.02)
            if current["status"] != "succeeded":
                raise RuntimeError(f"job {job['id']} {current['status']}: {current['error']}")
            starts.append(_ms(current["started_at"], current["created_at"]))
            hosts[current["host"]] = hosts.get(current["host"], 0) + 1
    ordered = sorted(starts)
    median = statistics.median(ordered)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    print(f"jobs: {len(starts)} (tiny CNN, niter 20, one at a time), hosts: {hosts}")
    print(
        f"submit-to-start: median {median:.1f} ms, p90 {p90:.1f} ms, min {ordered[0]:.1f} ms, "
        f"max {ordered[-1]:.1f} ms"
    )
    verdict = "PASS" if median < TARGET_MS else "FAIL"
    print(f"median {median:.1f} ms (target < {TARGET_MS:.0f} ms) {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
