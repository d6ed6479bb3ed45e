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


def test_measured_usage_keeps_its_fields_and_says_it_was_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_usage.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpu_usage, "_TICKS_PER_S", 100)
    start = CpuSample(wall_s=0.0, host_busy_ticks=0, host_steal_ticks=0, process_ticks=0)
    end = CpuSample(
        wall_s=cpu_usage.MIN_MEASURED_WALL_S,
        host_busy_ticks=50,
        host_steal_ticks=1,
        process_ticks=40,
    )
    usage = cpu_usage.usage(start, end)
    assert usage is not None and usage.measured and usage.reason is None
    assert usage.model_dump(mode="json") == {
        "logical_cpus": 2,
        "wall_s": cpu_usage.MIN_MEASURED_WALL_S,
        "benchmark_cpu_s": 0.4,
        "other_cpu_s": 0.1,
        "steal_s": 0.01,
        "other_fraction": pytest.approx(0.1 / 2),
        "steal_fraction": pytest.approx(0.01 / 2),
        "measured": True,
        "reason": None,
    }


def test_a_run_shorter_than_the_tick_can_resolve_is_not_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's case: 4.5 ms of wall time, a few 10 ms ticks on the host: 284% "other"."""
    monkeypatch.setattr(cpu_usage.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpu_usage, "_TICKS_PER_S", 100)
    start = CpuSample(wall_s=50.0, host_busy_ticks=1000, host_steal_ticks=7, process_ticks=300)
    end = CpuSample(wall_s=50.0045, host_busy_ticks=1003, host_steal_ticks=8, process_ticks=300)
    usage = cpu_usage.usage(start, end)
    assert usage is not None
    assert not usage.measured
    assert usage.logical_cpus == 2 and usage.wall_s == pytest.approx(0.0045)
    assert usage.reason is not None and "0.0045 s" in usage.reason and "10 ms" in usage.reason
    dumped = usage.model_dump(mode="json")
    for name in ("benchmark_cpu_s", "other_cpu_s", "steal_s", "other_fraction", "steal_fraction"):
        assert dumped[name] is None, name
    assert cpu_usage.busy_host_warnings(usage) == []

    just_short = CpuSample(
        wall_s=50.0 + cpu_usage.MIN_MEASURED_WALL_S * 0.99,
        host_busy_ticks=1100,
        host_steal_ticks=8,
        process_ticks=330,
    )
    short_usage = cpu_usage.usage(start, just_short)
    assert short_usage is not None and not short_usage.measured


def test_a_real_very_short_run_reports_cpu_as_not_measured(tiny_model: Path) -> None:
    result = run_benchmark(BenchmarkSpec(model_path=str(tiny_model), api="sync", niter=2))
    usage = result.cpu_usage
    assert usage is not None
    assert usage.wall_s < cpu_usage.MIN_MEASURED_WALL_S
    assert not usage.measured and usage.other_fraction is None and usage.reason
    assert result.model_dump(mode="json")["cpu_usage"]["other_fraction"] is None
    assert not any("Other processes used" in w or "hypervisor" in w for w in result.warnings)
