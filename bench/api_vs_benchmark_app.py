"""Through the REST API vs the official benchmark_app: ResNet-50 async, interleaved pairs.

A = a job through `ovbench serve` (the worker process runs it), B = `benchmark_app` with the
same flags (-api async -nireq 2 -nstreams 2 -hint none -t 10). Prints each pair's throughput
ratio (A/B) and the median. Target: median ratio >= 0.97.

    .venv/bin/python bench/api_vs_benchmark_app.py [--pairs 5] [--duration-s 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _service import Service, async_job, sample_model
from vs_benchmark_app import ASYNC_FLAGS, run_theirs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration-s", type=float, default=10)
    args = parser.parse_args()
    xml = sample_model("resnet50")
    ratios = []
    with Service() as svc:
        body = {"model_id": svc.upload_model(xml), **async_job(args.duration_s)}
        print(f"{'pair':>4} {'api fps':>9} {'benchmark_app fps':>18} {'ratio':>7}")
        for pair in range(1, args.pairs + 1):
            ours = svc.wait(svc.submit(body))["result"]["throughput_fps"]
            theirs = run_theirs(xml, ASYNC_FLAGS, args.duration_s).throughput_fps
            ratios.append(ours / theirs)
            print(f"{pair:>4} {ours:>9.2f} {theirs:>18.2f} {ours / theirs:>7.3f}", flush=True)
    median = statistics.median(ratios)
    print(f"median ratio {median:.3f} (target >= 0.97) {'PASS' if median >= 0.97 else 'FAIL'}")
    return 0 if median >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
