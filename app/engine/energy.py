"""Energy of the CPU packages around the measured loop, from RAPL through Linux's powercap.

`/sys/class/powercap/intel-rapl:N/energy_uj` counts each package's energy in microjoules
(AMD's RAPL is exposed under the same name); sub-zones (`intel-rapl:N:M`, cores and DRAM)
are parts of their package and are not added again. The counter wraps at
`max_energy_range_uj`: a reading lower than the one before has wrapped once (a loop would
need minutes at hundreds of watts to wrap twice). Since Linux 5.10 `energy_uj` is readable by
root only (CVE-2020-8694); then, as where there is no powercap at all (most virtual machines),
the result says `unavailable` with the reason.

`OVBENCH_POWERCAP_ROOT` points the reader at another tree (tests use a fake one).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.spec import EnergyUsage

POWERCAP_ROOT = Path("/sys/class/powercap")
ROOT_ENV = "OVBENCH_POWERCAP_ROOT"
_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")


@dataclass(frozen=True)
class EnergySample:
    """Counters of every package zone (None with the reason when they cannot be read)."""

    wall_s: float
    counters_uj: dict[str, int] | None
    ranges_uj: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


def powercap_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or POWERCAP_ROOT)


def sample(root: Path | None = None) -> EnergySample:
    """Every package zone's counter now."""
    root = root or powercap_root()
    now = time.perf_counter()
    if not root.is_dir():
        return EnergySample(
            now,
            None,
            reason=f"no RAPL energy counters: {root} is not present (a virtual machine, or a "
            "kernel or CPU without powercap RAPL)",
        )
    zones = sorted(p for p in root.iterdir() if _PACKAGE_ZONE.fullmatch(p.name))
    if not zones:
        return EnergySample(now, None, reason=f"no RAPL package zones (intel-rapl:N) in {root}")
    counters, ranges, names = {}, {}, {}
    for zone in zones:
        try:
            counters[zone.name] = int((zone / "energy_uj").read_text().strip())
        except PermissionError:
            return EnergySample(
                now,
                None,
                reason=f"{zone / 'energy_uj'} is readable by root only (Linux 5.10 and later); "
                "run as root or grant read access to it (e.g. a udev rule or chmod at boot)",
            )
        except (OSError, ValueError) as exc:
            return EnergySample(now, None, reason=f"cannot read {zone / 'energy_uj'}: {exc}")
        try:
            ranges[zone.name] = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            ranges[zone.name] = 0
        try:
            names[zone.name] = (zone / "name").read_text().strip() or zone.name
        except OSError:
            names[zone.name] = zone.name
    return EnergySample(now, counters, ranges, names)


def usage(start: EnergySample, end: EnergySample, inferences: int) -> EnergyUsage:
    """The packages' energy between two samples, per second and per inference."""
    if start.counters_uj is None or end.counters_uj is None:
        return EnergyUsage(measured=False, reason=start.reason or end.reason)
    if set(start.counters_uj) != set(end.counters_uj):
        return EnergyUsage(measured=False, reason="the RAPL zones changed during the run")
    total_uj = 0
    for zone, before in start.counters_uj.items():
        delta = end.counters_uj[zone] - before
        if delta < 0:  # wrapped around once
            if not start.ranges_uj.get(zone):
                return EnergyUsage(
                    measured=False,
                    reason=f"the {zone} counter wrapped and its max_energy_range_uj is unknown",
                )
            delta += start.ranges_uj[zone]
        total_uj += delta
    joules = total_uj / 1e6
    wall_s = end.wall_s - start.wall_s
    return EnergyUsage(
        measured=True,
        zones=[start.names.get(zone, zone) for zone in sorted(start.counters_uj)],
        joules=joules,
        average_watts=joules / wall_s if wall_s > 0 else None,
        millijoules_per_inference=joules * 1000 / inferences if inferences else None,
    )
