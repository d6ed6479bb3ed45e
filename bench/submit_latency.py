"""Submit-to-start latency on an idle service: how long a queued job waits for the worker.

Submits a 1-iteration tiny-CNN job, waits for it to finish, and repeats (N times, default 20);
the latency is the job's `started_at - created_at` as the service recorded them, plus the
client-side time from POST to first seeing `running`/finished. Target: median < 300 ms.

    .venv/bin/python bench/submit_latency.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime

from _service import Service, sample_model


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    xml = sample_model("tiny_cnn")
    waits_ms = []
    with Service() as svc:
        body = {"model_id": svc.upload_model(xml), "device": "CPU", "api": "sync", "niter": 1}
        svc.wait(svc.submit(body), poll_s=0.05)  # warm: the first job pays for imports
        for _ in range(args.jobs):
            job = svc.wait(svc.submit(body), poll_s=0.05)
            created = datetime.fromisoformat(job["created_at"])
            started = datetime.fromisoformat(job["started_at"])
            waits_ms.append((started - created).total_seconds() * 1000)
    waits_ms.sort()
    median = statistics.median(waits_ms)
    print(
        f"submit-to-start over {len(waits_ms)} jobs: min {waits_ms[0]:.1f} ms, median {median:.1f} ms, max {waits_ms[-1]:.1f} ms"
    )
    print(f"median {median:.1f} ms (target < 300 ms) {'PASS' if median < 300 else 'FAIL'}")
    return 0 if median < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
