"""Who used the host's CPU while the measured loop ran: this process, every other process,
and the hypervisor (steal), from Linux's /proc. Elsewhere nothing is measured.

benchmark_app reports its figures whatever else the machine was doing; a result that says
how busy the host was lets users tell a slow device from a busy host.

Loops shorter than `MIN_MEASURED_WALL_S` (1 s) are reported as not measured, with no
warning. /proc counts CPU time in whole ticks (1/SC_CLK_TCK s, 10 ms), and every CPU's
counter is caught part-way through a tick at both ends, so a difference can be off by about
a tick per CPU at each end: 2 ticks x logical_cpus out of the logical_cpus x wall_s there
were, a share of 20 ms / wall_s. From 1 s that is at most 2%, under the 5% that warns; for
a 4.5 ms loop a few stray ticks read as "Other processes used 284%".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from app.engine.spec import CpuUsage

BUSY_FRACTION_WARNING = 0.05
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The shortest loop whose CPU figures mean something (see the module docstring).
MIN_MEASURED_WALL_S = 1.0


@dataclass(frozen=True)
class CpuSample:
    """Counters in clock ticks (1/SC_CLK_TCK s), so differences stay exact."""

    wall_s: float
    host_busy_ticks: int  # every CPU, not idle, not iowait, not steal
    host_steal_ticks: int
    process_ticks: int


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
        host_busy_ticks=user + nice + system + irq + softirq,
        host_steal_ticks=steal,
        process_ticks=round((times.user + times.system) * _TICKS_PER_S),
    )


def usage(start: CpuSample | None, end: CpuSample | None) -> CpuUsage | None:
    """CPU use between two samples; not measured when they are under MIN_MEASURED_WALL_S apart."""
    if start is None or end is None:
        return None
    cpus = os.cpu_count() or 1
    wall_s = max(end.wall_s - start.wall_s, 1e-9)
    if wall_s < MIN_MEASURED_WALL_S:
        tick_ms = 1000 / _TICKS_PER_S
        return CpuUsage(
            logical_cpus=cpus,
            wall_s=wall_s,
            benchmark_cpu_s=None,
            other_cpu_s=None,
            steal_s=None,
            other_fraction=None,
            steal_fraction=None,
            measured=False,
            reason=(
                f"the measured loop ran {wall_s:.2g} s; /proc counts CPU time in "
                f"{tick_ms:g} ms ticks, so the share of other processes means something "
                f"only from {MIN_MEASURED_WALL_S:g} s on"
            ),
        )
    benchmark_ticks = end.process_ticks - start.process_ticks
    # Both counters tick at 10 ms: ours may run ahead of the host's; never less than nothing.
    other_ticks = max(0, end.host_busy_ticks - start.host_busy_ticks - benchmark_ticks)
    steal_ticks = max(0, end.host_steal_ticks - start.host_steal_ticks)
    benchmark_s = benchmark_ticks / _TICKS_PER_S
    other_s = other_ticks / _TICKS_PER_S
    steal_s = steal_ticks / _TICKS_PER_S
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
    """A warning when other processes or the hypervisor took a noticeable share (when measured)."""
    if cpu is None or not cpu.measured:
        return []
    found = []
    other, other_s = cpu.other_fraction, cpu.other_cpu_s
    if other is not None and other_s is not None and other > BUSY_FRACTION_WARNING:
        found.append(
            f"Other processes used {other:.0%} of the host's CPU time while the "
            f"benchmark ran ({other_s:.1f} CPU-s of {cpu.logical_cpus * cpu.wall_s:.1f}): "
            "the figures may be lower than the device can do. Run it again on a quiet host."
        )
    steal, steal_s = cpu.steal_fraction, cpu.steal_s
    if steal is not None and steal_s is not None and steal > BUSY_FRACTION_WARNING:
        found.append(
            f"The hypervisor took {steal:.0%} of this virtual machine's CPU time "
            f"while the benchmark ran ({steal_s:.1f} CPU-s): the figures may be lower and "
            "noisier than on dedicated hardware."
        )
    return found
