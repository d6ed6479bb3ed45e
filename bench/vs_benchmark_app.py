"""ovbench vs the official benchmark_app, side by side on the same model and configuration.

Runs `ovbench run ... --json` (A) and `benchmark_app ...` (B) as child processes, interleaved
A B B A A B ..., for N pairs per case, and prints each pair's throughput and median-latency ratio
(ours / theirs) and the medians of those ratios against the targets. This machine is noisy:
only the pairs and their medians mean anything, never one run.

    .venv/bin/python bench/vs_benchmark_app.py [--pairs 5] [--duration-s 10] [--only resnet50_async]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
OVBENCH = str(BIN / "ovbench")
BENCHMARK_APP = str(BIN / "benchmark_app")
ASYNC_FLAGS = ["-api", "async", "-nireq", "2", "-nstreams", "2", "-hint", "none"]


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    flags: list[str]
    min_throughput_ratio: float
    max_latency_deviation: float = 0.03


CASES = [
    Case("resnet50_async", "resnet50", ASYNC_FLAGS, 0.97),
    Case("resnet50_sync", "resnet50", ["-api", "sync"], 0.97),
    Case("mobilenet_v2_async", "mobilenet_v2", ASYNC_FLAGS, 0.97),
    Case("tiny_cnn_async", "tiny_cnn", ASYNC_FLAGS, 0.95),
]


@dataclass
class Run:
    throughput_fps: float
    median_latency_ms: float


def run_ours(model: Path, flags: list[str], duration_s: float) -> Run:
    cmd = [OVBENCH, "run", "-m", str(model), "-d", "CPU", *flags, "-t", f"{duration_s:g}", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    return Run(result["throughput_fps"], result["latency_ms"]["median"])


_THROUGHPUT = re.compile(r"Throughput:\s+([\d.]+) FPS")
_MEDIAN = re.compile(r"Median:\s+([\d.]+) (ms|us)")


def run_theirs(model: Path, flags: list[str], duration_s: float) -> Run:
    cmd = [BENCHMARK_APP, "-m", str(model), "-d", "CPU", *flags, "-t", f"{duration_s:g}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    throughput = _THROUGHPUT.search(proc.stdout)
    median = _MEDIAN.search(proc.stdout)
    if throughput is None or median is None:
        raise RuntimeError(f"cannot parse benchmark_app output:\n{proc.stdout[-2000:]}")
    median_ms = float(median.group(1)) / (1000 if median.group(2) == "us" else 1)
    return Run(float(throughput.group(1)), median_ms)


def bench_case(case: Case, model: Path, pairs: int, duration_s: float) -> bool:
    print(
        f"\n== {case.name}: {' '.join(case.flags)} -t {duration_s:g} ({pairs} pairs in ABBA order, A=ovbench B=benchmark_app)"
    )
    print(
        f"{'pair':>4} {'ours fps':>10} {'theirs fps':>11} {'ratio':>7} {'ours p50 ms':>12} {'theirs p50 ms':>14} {'ratio':>7}"
    )
    fps_ratios, lat_ratios = [], []
    for pair in range(1, pairs + 1):
        # A B, then B A: a machine that speeds up or slows down over the minutes of a case
        # (thermal, other tenants) then favours neither side.
        if pair % 2:
            ours = run_ours(model, case.flags, duration_s)
            theirs = run_theirs(model, case.flags, duration_s)
        else:
            theirs = run_theirs(model, case.flags, duration_s)
            ours = run_ours(model, case.flags, duration_s)
        fps_ratio = ours.throughput_fps / theirs.throughput_fps
        lat_ratio = ours.median_latency_ms / theirs.median_latency_ms
        fps_ratios.append(fps_ratio)
        lat_ratios.append(lat_ratio)
        print(
            f"{pair:>4} {ours.throughput_fps:>10.2f} {theirs.throughput_fps:>11.2f} {fps_ratio:>7.3f} "
            f"{ours.median_latency_ms:>12.4f} {theirs.median_latency_ms:>14.4f} {lat_ratio:>7.3f}",
            flush=True,
        )
    fps_median = statistics.median(fps_ratios)
    lat_median = statistics.median(lat_ratios)
    fps_ok = fps_median >= case.min_throughput_ratio
    lat_ok = abs(lat_median - 1) <= case.max_latency_deviation
    print(
        f"median throughput ratio {fps_median:.3f} (target >= {case.min_throughput_ratio}) "
        f"{'PASS' if fps_ok else 'FAIL'}; median latency ratio {lat_median:.3f} "
        f"(target within {case.max_latency_deviation:.0%}) {'PASS' if lat_ok else 'FAIL'}"
    )
    return fps_ok and lat_ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration-s", type=float, default=10)
    parser.add_argument("--only", nargs="+", choices=[c.name for c in CASES])
    parser.add_argument("--models-dir", type=Path, help="Sample models (written here if missing)")
    args = parser.parse_args()
    models_dir = args.models_dir or Path(tempfile.mkdtemp(prefix="ovbench-models-"))
    cases = [c for c in CASES if not args.only or c.name in args.only]
    needed = sorted({c.model for c in cases if not (models_dir / f"{c.model}.xml").exists()})
    if needed:
        subprocess.run([OVBENCH, "make-models", str(models_dir), "--only", *needed], check=True)
    ok = [bench_case(c, models_dir / f"{c.model}.xml", args.pairs, args.duration_s) for c in cases]
    print(f"\n{sum(ok)} of {len(ok)} cases within target")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
