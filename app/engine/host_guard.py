"""The host guard: how busy the host was before the measured runs (and a wait for it to go
quiet), and the CPU frequency and temperature while they ran, to tell throttling from a slow
device.

Before the run, other processes' share of the host's CPUs comes from /proc/stat over a window
that starts when the job does (`since`), so reading and compiling the model count towards
`sample_s`. A busy host is sampled again in windows of max(sample_s, 0.5) s until one is quiet
or `wait_s` has passed; then the run starts anyway and the result says so.

During the run, `HostRecorder` reads, once a second, the mean of every CPU's
`scaling_cur_freq` (else the "cpu MHz" lines of /proc/cpuinfo) and the hottest thermal zone,
under `OVBENCH_HOST_ROOT` (read at call time; else /).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.engine import cpu_usage
from app.engine.host_probe import cpuinfo_blocks, host_root
from app.engine.integrity import HostGuardReport, HostGuardRules, StabilityRules, Trace

MIN_WAIT_WINDOW_S = 0.5
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # as cpu_usage
_CPU_DIR = re.compile(r"cpu\d+")
_ZONE_DIR = re.compile(r"thermal_zone\d+")


@dataclass(frozen=True)
class GuardStart:
    """What the guard saw before the run. `other_fraction` is over the last window sampled."""

    sampled_s: float  # the whole time the host was sampled, waiting included
    other_fraction: float | None
    waited_s: float
    ran_busy: bool
    message: str | None


def other_fraction(start: cpu_usage.CpuSample, end: cpu_usage.CpuSample) -> float:
    """Other processes' share of the host's CPUs between two samples (never below 0)."""
    cpus = os.cpu_count() or 1
    wall_s = max(end.wall_s - start.wall_s, 1e-9)
    ours = end.process_ticks - start.process_ticks
    others = max(0, end.host_busy_ticks - start.host_busy_ticks - ours)
    return others / _TICKS_PER_S / (cpus * wall_s)


def _sleep(seconds: float, cancel: threading.Event | None) -> bool:
    """Sleep; True (at once) when `cancel` is set."""
    return (cancel or threading.Event()).wait(max(0.0, seconds))


def guard_before_run(
    rules: HostGuardRules,
    since: cpu_usage.CpuSample | None,
    cancel: threading.Event | None = None,
) -> GuardStart:
    """Sample the host from `since` for at least `rules.sample_s`; wait while it is busy."""
    if rules.sample_s == 0:
        return GuardStart(0.0, None, 0.0, False, None)
    cancelled = since is not None and _sleep(
        since.wall_s + rules.sample_s - time.perf_counter(), cancel
    )
    end = cpu_usage.sample()
    if since is None or end is None:
        message = (
            "The host's CPU use could not be sampled before the run (/proc/stat unreadable); "
            "the run started without checking that the host was quiet."
        )
        return GuardStart(0.0, None, 0.0, False, message)
    share = other_fraction(since, end)
    if cancelled or share <= rules.busy_fraction:
        return GuardStart(end.wall_s - since.wall_s, share, 0.0, False, None)
    waiting_since = end.wall_s
    window_s = max(rules.sample_s, MIN_WAIT_WINDOW_S)
    while end.wall_s - waiting_since < rules.wait_s:
        start = end
        cancelled = _sleep(window_s, cancel)
        sampled = cpu_usage.sample()
        if sampled is None:
            break
        end = sampled
        share = other_fraction(start, end)
        if cancelled or share <= rules.busy_fraction:
            waited_s = end.wall_s - waiting_since
            note = None
            if not cancelled:
                note = (
                    f"Waited {waited_s:.1f} s for the host to go quiet before the run (other "
                    f"processes used {share:.0%} of its CPUs at the end, at most "
                    f"{rules.busy_fraction:.0%} allowed)."
                )
            return GuardStart(end.wall_s - since.wall_s, share, waited_s, False, note)
    waited_s = end.wall_s - waiting_since
    return GuardStart(
        end.wall_s - since.wall_s,
        share,
        waited_s,
        True,
        f"Other processes used {share:.0%} of the host's CPUs before the run (more than "
        f"{rules.busy_fraction:.0%}); waited {waited_s:.1f} s for them to go quiet, then ran "
        "anyway: the figures may be lower than the device can do.",
    )


@dataclass
class _Source:
    """A way to read one value now (None when this reading failed), and where it reads."""

    read: Callable[[], float | None]
    where: str


def _number(path: Path) -> float | None:
    try:
        return float(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _children(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []


def _frequency_source(root: Path) -> _Source | str:
    """The frequency's source, or the reason there is none."""
    cpus = root / "sys/devices/system/cpu"
    files = [p / "cpufreq/scaling_cur_freq" for p in _children(cpus, _CPU_DIR)]
    files = [f for f in files if _number(f) is not None]
    if files:

        def read_cpufreq() -> float | None:
            values = [v for v in map(_number, files) if v is not None]
            return round(sum(values) / len(values) / 1000, 1) if values else None  # kHz

        where = f"{cpus}/cpu*/cpufreq/scaling_cur_freq (mean of {len(files)} CPUs)"
        return _Source(read_cpufreq, where)
    cpuinfo = root / "proc/cpuinfo"

    def read_cpuinfo() -> float | None:
        try:
            blocks = cpuinfo_blocks(cpuinfo.read_text(encoding="utf-8", errors="replace"))
            values = [float(b["cpu MHz"]) for b in blocks if "cpu MHz" in b]
        except (OSError, ValueError):
            return None
        return round(sum(values) / len(values), 1) if values else None

    if read_cpuinfo() is None:
        return (
            f"no CPU frequency: no readable {cpus}/cpu*/cpufreq/scaling_cur_freq (no cpufreq "
            f'driver, as in most virtual machines) and no "cpu MHz" lines in {cpuinfo}'
        )
    where = f'{cpuinfo} "cpu MHz" (mean over CPUs; no cpufreq driver'
    try:
        virtual = " hypervisor" in f" {cpuinfo.read_text(encoding='utf-8', errors='replace')}"
    except OSError:
        virtual = False
    where += "; a virtual machine: often the nominal frequency)" if virtual else ")"
    return _Source(read_cpuinfo, where)


def _temperature_source(root: Path) -> _Source | str:
    """The hottest thermal zone's source, or the reason there is none."""
    thermal = root / "sys/class/thermal"
    zones = [z for z in _children(thermal, _ZONE_DIR) if _number(z / "temp") is not None]
    if not zones:
        return f"no temperature: no readable {thermal}/thermal_zone*/temp (most virtual machines)"
    types = []
    for zone in zones:
        try:
            types.append(f"{zone.name} {(zone / 'type').read_text().strip()}")
        except (OSError, ValueError):
            types.append(zone.name)

    def read() -> float | None:
        values = [v for v in (_number(z / "temp") for z in zones) if v is not None]
        return max(values) / 1000 if values else None  # millidegrees C

    return _Source(read, f"hottest of {thermal}: {', '.join(types)}")


class HostRecorder:
    """Reads the CPU frequency and temperature at start, then every `interval_s` until stop."""

    def __init__(self, root: Path | None = None, interval_s: float = 1.0) -> None:
        self._root = root
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sources: list[_Source | str] = []
        self._values: list[list[float]] = [[], []]
        self._readings = 0

    @property
    def readings(self) -> int:
        """Readings taken so far (each reads every available source once)."""
        return self._readings

    def start(self) -> None:
        root = self._root or host_root()
        self._sources = [_frequency_source(root), _temperature_source(root)]
        self._read()
        self._thread = threading.Thread(target=self._loop, name="host-recorder", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[Trace, Trace]:
        """(frequency_mhz, temperature_c)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        sources: list[_Source | str] = self._sources or ["the recorder was not started"] * 2
        frequency, temperature = (
            _trace(source, values) for source, values in zip(sources, self._values, strict=True)
        )
        return frequency, temperature

    def _read(self) -> None:
        for source, values in zip(self._sources, self._values, strict=True):
            if isinstance(source, _Source):
                value = source.read()
                if value is not None:
                    values.append(value)
        self._readings += 1

    def _loop(self) -> None:
        began = time.perf_counter()
        ticks = 1
        while not self._stop.wait(max(0.0, began + ticks * self._interval_s - time.perf_counter())):
            self._read()
            ticks += 1


def _trace(source: _Source | str, values: list[float]) -> Trace:
    if isinstance(source, str):
        return Trace(available=False, reason=source)
    return Trace(available=True, source=source.where, per_second=list(values))


def frequency_drop(frequency: Trace, rules: StabilityRules) -> float | None:
    """The largest share below the first reading that `rules.min_steady_s` consecutive
    readings all stayed (0 when none fell); None when unavailable or too few readings."""
    values = frequency.per_second
    steady = rules.min_steady_s
    if not frequency.available or len(values) < steady + 1 or values[0] <= 0:
        return None
    highest = min(max(values[i : i + steady]) for i in range(1, len(values) - steady + 1))
    return max(0.0, 1 - highest / values[0])


def throttled(frequency: Trace, rules: StabilityRules) -> bool | None:
    """Some `rules.min_steady_s` consecutive readings all lay more than `rules.throttle_drop`
    below the first; None when unavailable or with fewer than min_steady_s + 1 readings."""
    drop = frequency_drop(frequency, rules)
    return None if drop is None else drop > rules.throttle_drop


def report(
    rules: HostGuardRules,
    start: GuardStart,
    frequency: Trace,
    temperature: Trace,
    stability: StabilityRules,
) -> HostGuardReport:
    return HostGuardReport(
        rules=rules,
        sampled_s=start.sampled_s,
        other_fraction=start.other_fraction,
        waited_s=start.waited_s,
        ran_busy=start.ran_busy,
        message=start.message,
        frequency_mhz=frequency,
        temperature_c=temperature,
        throttled=throttled(frequency, stability),
        frequency_drop=frequency_drop(frequency, stability),
    )


def guard_warnings(report: HostGuardReport) -> list[str]:
    """The ran-busy message and a throttling warning; nothing for a quiet, steady host."""
    found = []
    if report.ran_busy and report.message:
        found.append(report.message)
    if report.throttled and report.frequency_drop is not None:
        first = report.frequency_mhz.per_second[0]
        found.append(
            f"The CPU frequency stayed {report.frequency_drop:.0%} or more below its first "
            f"reading ({first:.0f} MHz) for seconds on end during the run: the CPU was "
            "throttling (heat or power limits), so the figures may be lower than the device "
            "sustains when cool."
        )
    return found
