"""When does `OVBENCH_SERVICE_CPUS` pay? Polling's perturbation with and without the split,
and what giving the service a core costs the benchmark.

Two services run side by side (one job at a time between them): "shared", as by default,
and "split" with OVBENCH_SERVICE_CPUS (default `0`: the API, the worker's control threads and
the pollers' service on CPU 0, the benchmark on the rest). Each round runs the same ResNet-50
async job (`-t 10`, the default throughput hint, so the device sizes its streams to the CPUs
it has) four ways in rotating order: shared quiet, shared with 32 clients polling every 0.5 s
(bench/api_load.py's pollers), split quiet, split polled. Per round it prints the four
throughputs, each service's perturbation (1 - polled / quiet) and the split's cost
(1 - split quiet / shared quiet); then the medians.

    .venv/bin/python bench/isolation.py [--rounds 4] [--clients 32] [--duration-s 10] [--service-cpus 0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from typing import Any

from _service import Service, sample_model
from api_load import _CpuMeter, _loaded_run, _quiet_run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=10)
    parser.add_argument("--interval-s", type=float, default=0.5)
    parser.add_argument("--service-cpus", default="0")
    args = parser.parse_args()
    xml = sample_model("resnet50")
    services = {
        "shared": Service(),
        "split": Service(env={"OVBENCH_SERVICE_CPUS": args.service_cpus}),
    }
    bodies: dict[str, dict[str, Any]] = {}
    meters: dict[str, _CpuMeter] = {}
    figures: dict[tuple[str, str], list[float]] = {}
    cells = [("shared", "quiet"), ("shared", "polled"), ("split", "quiet"), ("split", "polled")]
    try:
        for name, svc in services.items():
            svc.__enter__()
            assert svc.proc is not None
            bodies[name] = {
                "model_id": svc.upload_model(xml),
                "api": "async",
                "duration_s": args.duration_s,
            }
            meters[name] = _CpuMeter(svc.proc.pid)
        print(
            f"{'round':>5} {'shared quiet':>13} {'shared polled':>14} {'split quiet':>12} "
            f"{'split polled':>13} {'perturb shared':>15} {'perturb split':>14} {'split cost':>11}"
        )
        perturb_shared, perturb_split, costs = [], [], []
        for index in range(args.rounds):
            fps: dict[tuple[str, str], float] = {}
            shift = index % len(cells)
            for name, mode in cells[shift:] + cells[:shift]:
                svc, body, meter = services[name], bodies[name], meters[name]
                if mode == "quiet":
                    fps[name, mode] = _quiet_run(svc, body, meter)[0]
                else:
                    fps[name, mode] = asyncio.run(
                        _loaded_run(svc, body, args.clients, args.interval_s, meter)
                    )[0]
            for cell, value in fps.items():
                figures.setdefault(cell, []).append(value)
            p_shared = 1 - fps["shared", "polled"] / fps["shared", "quiet"]
            p_split = 1 - fps["split", "polled"] / fps["split", "quiet"]
            cost = 1 - fps["split", "quiet"] / fps["shared", "quiet"]
            perturb_shared.append(p_shared)
            perturb_split.append(p_split)
            costs.append(cost)
            print(
                f"{index + 1:>5} {fps['shared', 'quiet']:>13.2f} {fps['shared', 'polled']:>14.2f} "
                f"{fps['split', 'quiet']:>12.2f} {fps['split', 'polled']:>13.2f} "
                f"{p_shared:>15.1%} {p_split:>14.1%} {cost:>11.1%}",
                flush=True,
            )
    finally:
        for svc in services.values():
            svc.__exit__(None, None, None)
    print(
        f"median: polling perturbs the shared service by {statistics.median(perturb_shared):.1%} "
        f"and the split one by {statistics.median(perturb_split):.1%}; the split costs "
        f"{statistics.median(costs):.1%} of quiet throughput (OVBENCH_SERVICE_CPUS="
        f"{args.service_cpus})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
