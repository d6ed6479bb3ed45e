"""Who used the host's CPU while the measured loop ran: this process, every other process,
and the hypervisor (steal), from Linux's /proc. Elsewhere nothing is measured.

benchmark_app reports its figures whatever else the machine was doing; a result that says
how busy the host was lets users tell a slow device from a busy host.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from app.engine.spec import CpuUsage

BUSY_FRACTION_WARNING = 0.05
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSample:
    wall_s: float
    host_busy_s: float  # every CPU, not idle, not iowait, not steal
    host_steal_s: float
    process_cpu_s: float


def sample() -> CpuSample | None:
    """The counters now; None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    times = os.times()
    return CpuSample(
        wall_s=time.perf_counter(),
        host_busy_s=(user + nice + system + irq + softirq) / _TICKS_PER_S,
        host_steal_s=steal / _TICKS_PER_S,
        process_cpu_s=times.user + times.system,
    )


def usage(start: CpuSample | None, end: CpuSample | None) -> CpuUsage | None:
    """CPU use between two samples."""
    if start is None or end is None:
        return None
    cpus = os.cpu_count() or 1
    wall_s = max(end.wall_s - start.wall_s, 1e-9)
    benchmark_s = end.process_cpu_s - start.process_cpu_s
    # Both counters tick at 10 ms: never report less than nothing.
    other_s = max(0.0, (end.host_busy_s - start.host_busy_s) - benchmark_s)
    steal_s = max(0.0, end.host_steal_s - start.host_steal_s)
    return CpuUsage(
        logical_cpus=cpus,
        wall_s=wall_s,
        benchmark_cpu_s=benchmark_s,
        other_cpu_s=other_s,
        steal_s=steal_s,
        other_fraction=other_s / (cpus * wall_s),
        steal_fraction=steal_s / (cpus * wall_s),
    )


def busy_host_warnings(cpu: CpuUsage | None) -> list[str]:
    """A warning when other processes or the hypervisor took a noticeable share."""
    if cpu is None:
        return []
    found = []
    if cpu.other_fraction > BUSY_FRACTION_WARNING:
        found.append(
            f"Other processes used {cpu.other_fraction:.0%} of the host's CPU time while the "
            f"benchmark ran ({cpu.other_cpu_s:.1f} CPU-s of {cpu.logical_cpus * cpu.wall_s:.1f}): "
            "the figures may be lower than the device can do. Run it again on a quiet host."
        )
    if cpu.steal_fraction > BUSY_FRACTION_WARNING:
        found.append(
            f"The hypervisor took {cpu.steal_fraction:.0%} of this virtual machine's CPU time "
            f"while the benchmark ran ({cpu.steal_s:.1f} CPU-s): the figures may be lower and "
            "noisier than on dedicated hardware."
        )
    return found
