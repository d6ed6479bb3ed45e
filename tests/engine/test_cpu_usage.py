"""The result says how busy the host was while the measured loop ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.engine import cpu_usage
from app.engine.cpu_usage import CpuSample
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkSpec


def test_usage_splits_host_time_between_this_process_others_and_steal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_usage.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(cpu_usage, "_TICKS_PER_S", 100)
    start = CpuSample(wall_s=100.0, host_busy_ticks=5000, host_steal_ticks=100, process_ticks=1000)
    end = CpuSample(wall_s=110.0, host_busy_ticks=8000, host_steal_ticks=500, process_ticks=3000)
    usage = cpu_usage.usage(start, end)
    assert usage is not None
    assert usage.wall_s == pytest.approx(10.0)
    assert usage.benchmark_cpu_s == 20.0 and usage.steal_s == 4.0  # exact: counted in ticks
    assert usage.other_cpu_s == 10.0  # 30 busy on the host, 20 of them ours
    assert usage.other_fraction == pytest.approx(10.0 / 40.0)
    assert usage.steal_fraction == pytest.approx(4.0 / 40.0)
    warnings = cpu_usage.busy_host_warnings(usage)
    assert len(warnings) == 2
    assert "Other processes used 25%" in warnings[0] and "hypervisor took 10%" in warnings[1]

    # Counters tick at 10 ms: ours may run ahead of the host's by a tick. Never below zero.
    quiet_end = CpuSample(
        wall_s=110.0, host_busy_ticks=6999, host_steal_ticks=100, process_ticks=3000
    )
    quiet = cpu_usage.usage(start, quiet_end)
    assert quiet is not None and quiet.other_cpu_s == 0.0 and quiet.steal_s == 0.0
    assert cpu_usage.busy_host_warnings(quiet) == []
    assert cpu_usage.usage(None, end) is None and cpu_usage.busy_host_warnings(None) == []


def test_a_busy_host_is_measured_and_warned_about(tiny_model: Path) -> None:
    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    # One spinner a core, so that "other" is a large share on a host of any size.
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        result = run_benchmark(
            BenchmarkSpec(model_path=str(tiny_model), api="sync", duration_s=1.5)
        )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    usage = result.cpu_usage
    assert usage is not None
    assert usage.wall_s == pytest.approx(result.duration_ms / 1000, rel=0.1)
    assert usage.benchmark_cpu_s > 0.2 * usage.wall_s  # the inference thread, sharing a core
    # The spinners want every core: they got well over one core's worth between them.
    assert usage.other_cpu_s > 0.5 * usage.wall_s
    assert usage.other_fraction > 0.25
    assert any(w.startswith("Other processes used") for w in result.warnings)
