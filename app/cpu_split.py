"""`OVBENCH_SERVICE_CPUS`: the host's CPUs split between the service and the benchmark.

On a device host every CPU cycle the service spends comes out of the benchmark. With the
split set (e.g. `0`, or `0-1,8`), the API process, the worker's and the agent's control
threads (progress, heartbeats, cancel checks) and everything they start run on the service
CPUs, and each run's thread, and the inference threads OpenVINO starts from it, on the rest:
OpenVINO's CPU plugin sizes its streams and threads from the affinity of the thread that
creates the Core, and the result's `config.cpus` shows the CPUs the run had.

Linux applies `sched_setaffinity(0, ...)` to the calling thread; threads and processes it
starts later inherit the mask. So: `pin_service()` first thing in a process, and
`pin_run()` in the thread that will run the benchmark, before it creates anything else.
Elsewhere (no sched_setaffinity) the split is refused at start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuSplit:
    service: frozenset[int]
    run: frozenset[int]


def parse_cpu_list(text: str) -> frozenset[int]:
    """`0`, `0,2`, `0-3,8` -> the CPU numbers; ValueError naming what is wrong."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            raise ValueError(
                f"{part!r} in {text!r} is not a CPU number or range (use e.g. 0 or 0-1,4)"
            ) from None
        if low < 0 or high < low:
            raise ValueError(f"{part!r} in {text!r} is not a CPU range (use low-high)")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def split(text: str, available: frozenset[int] | None = None) -> CpuSplit | None:
    """The split `text` asks for among the `available` CPUs (default: this thread's); None
    when `text` is empty. ValueError when it names CPUs not available or leaves none to run."""
    if not text.strip():
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("OVBENCH_SERVICE_CPUS needs Linux (sched_setaffinity)")
    available = available if available is not None else frozenset(os.sched_getaffinity(0))
    try:
        service = parse_cpu_list(text)
    except ValueError as exc:
        raise ValueError(f"OVBENCH_SERVICE_CPUS={text}: {exc}") from None
    unknown = service - available
    if unknown:
        raise ValueError(
            f"OVBENCH_SERVICE_CPUS={text} names CPUs {sorted(unknown)} this process may not "
            f"use; it may use {_cpu_list(available)}"
        )
    run = available - service
    if not run:
        raise ValueError(
            f"OVBENCH_SERVICE_CPUS={text} leaves no CPU for the benchmark (of "
            f"{_cpu_list(available)}); leave at least one out, or unset it"
        )
    return CpuSplit(service=service, run=frozenset(run))


def handed_down(service: str, run: str) -> CpuSplit | None:
    """The split a parent process worked out and handed down as CPU lists (its children
    start pinned to the service CPUs, so they cannot work it out again); without `run` (a
    process started on its own), worked out here."""
    if not service.strip():
        return None
    if not run.strip():
        return split(service)
    return CpuSplit(service=parse_cpu_list(service), run=parse_cpu_list(run))


def cpu_list(cpus: frozenset[int]) -> str:
    """`0,2,3`: a CPU list that `parse_cpu_list` reads back."""
    return ",".join(str(cpu) for cpu in sorted(cpus))


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def pin_service(cpus: CpuSplit | None) -> None:
    """The calling thread (and what it starts from now on) on the service CPUs."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus.service)


def pin_run(cpus: CpuSplit | None) -> None:
    """The calling thread (and the inference threads it will start) on the benchmark's CPUs."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus.run)


def describe(cpus: CpuSplit) -> str:
    return f"service on CPUs {_cpu_list(cpus.service)}, benchmarks on CPUs {_cpu_list(cpus.run)}"
