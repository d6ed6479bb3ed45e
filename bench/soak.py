"""Soak: 300 short jobs in a row on one worker; prints the worker's RSS and open files.

Alternates two models (the tiny CNN at 64x64 and at 32x32), sync and async, niter 1..5;
every tenth job fails in the engine (a shape of the wrong rank) and every tenth is
cancelled right after it is queued (before or while it runs). Jobs go in batches; after
each batch the worker's RSS (VmRSS) and /proc/<pid>/fd count are sampled, giving the curve
after 10 jobs and then every 25. The reliability test (tests/reliability/test_soak.py) runs
the same driver and asserts RSS stays within 64 MiB of the 10-job sample.

    .venv/bin/python bench/soak.py [--jobs 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

FINISHED = ("succeeded", "failed", "cancelled")


def write_soak_models(directory: Path) -> list[Path]:
    """Two different tiny models: the tiny CNN at 64x64 and reshaped to 32x32."""
    import openvino as ov

    from app.engine.samples import build_tiny_cnn

    directory.mkdir(parents=True, exist_ok=True)
    big = build_tiny_cnn()
    small = build_tiny_cnn()
    small.reshape([1, 3, 32, 32])
    paths = [directory / "tiny_cnn_64.xml", directory / "tiny_cnn_32.xml"]
    for model, path in zip((big, small), paths, strict=True):
        ov.save_model(model, path, compress_to_fp16=False)
    return paths


def job_body(i: int, model_ids: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_id": model_ids[i % len(model_ids)],
        "device": "CPU",
        "api": ("sync", "async")[(i // 2) % 2],
        "niter": 1 + i % 5,
    }
    if body["api"] == "async":
        body["nireq"] = 2
    if i % 10 == 7:
        body["shape"] = "[1,3]"  # parses, but the model's input has rank 4: fails in the engine
    return body


def worker_sample(pid: int) -> dict[str, float]:
    """The worker's RSS in MiB and its number of open file descriptors."""
    with open(f"/proc/{pid}/status") as status:
        rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return {"rss_mib": round(rss_kib / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _idle(client: httpx.Client) -> bool:
    return all(
        client.get("/jobs", params={"status": status, "limit": 1}).headers["x-total-count"] == "0"
        for status in ("queued", "running")
    )


def run_soak(
    client: httpx.Client,
    model_ids: list[str],
    worker_pid: int,
    total: int = 300,
    timeout_s: float = 600,
) -> tuple[list[dict[str, float]], Counter[str]]:
    """Submit `total` jobs in batches; the curve (after 10, then every 25) and the outcomes."""
    checkpoints = [10, *range(25, total + 1, 25)]
    if checkpoints[-1] != total:
        checkpoints.append(total)
    curve: list[dict[str, float]] = []
    ids: list[str] = []
    deadline = time.monotonic() + timeout_s
    for checkpoint in checkpoints:
        while len(ids) < checkpoint:
            i = len(ids)
            response = client.post("/jobs", json=job_body(i, model_ids))
            if response.status_code != 202:
                raise RuntimeError(f"POST /jobs gave {response.status_code}: {response.text}")
            ids.append(response.json()["id"])
            if i % 10 == 3:
                cancel = client.post(f"/jobs/{ids[-1]}/cancel")
                if cancel.status_code not in (200, 409):  # 409: it already finished
                    raise RuntimeError(f"cancel gave {cancel.status_code}: {cancel.text}")
        while not _idle(client):
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished in {timeout_s} s")
            time.sleep(0.02)
        curve.append({"jobs": checkpoint, **worker_sample(worker_pid)})
    statuses = Counter(job["status"] for job in client.get("/jobs", params={"limit": 1000}).json())
    return curve, statuses


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _service import Service

    models_dir = Path(tempfile.mkdtemp(prefix="ovbench-soak-models-"))
    with Service(env={"OVBENCH_WORKER_POLL_INTERVAL_S": "0.02"}) as svc:
        model_ids = [svc.upload_model(xml) for xml in write_soak_models(models_dir)]
        pid = int(svc.client.get("/readyz").json()["worker"]["pid"])
        started = time.monotonic()
        curve, statuses = run_soak(svc.client, model_ids, pid, args.jobs)
        took_s = time.monotonic() - started
        print(f"{args.jobs} jobs in {took_s:.1f} s; outcomes: {dict(statuses)}")
        print(f"{'jobs':>6} {'RSS MiB':>9} {'fds':>5}")
        for point in curve:
            print(f"{point['jobs']:>6} {point['rss_mib']:>9.1f} {point['fds']:>5}")
        growth = curve[-1]["rss_mib"] - curve[0]["rss_mib"]
        print(f"RSS growth after the first 10 jobs: {growth:+.1f} MiB (limit +64)")
        staged = list((svc.data_dir / "tmp").iterdir())
        print(f"staging files left: {len(staged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
