"""Where a job can run: the device check of a single host, and fleet mode's scheduler.

Single host: the device must be one the local worker reported (`check_device`).

Fleet: a job names a `device` and may name a `host` or `host_labels`. The candidates are the
hosts that are live (a heartbeat younger than `heartbeat_timeout_s`), not draining, carry
every label asked for and offer the device; of those the scheduler picks the one that will
start the job soonest: the least estimated work ahead of it (what is left of its running job
plus its queued jobs, each estimated as its measuring time, as `wall_time_budget_s` plans it,
plus `START_OVERHEAD_S` for reading and compiling), ties broken by name. No candidate is a
422 that lists what the live hosts offer now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from app.engine.spec import VIRTUAL_DEVICES, hardware_devices
from app.errors import ValidationError
from app.settings import Settings
from app.store.hosts import HostLoad
from app.store.tables import HostRow, JobRow
from app.worker.supervisor import wall_time_budget_s

HostState = Literal["idle", "busy", "offline", "draining"]
START_OVERHEAD_S = 2.0


def missing_devices(device: str, available: Sequence[str]) -> list[str]:
    """The hardware devices `device` needs that `available` lacks (a virtual device such as
    AUTO:GPU,CPU needs each of its devices; GPU matches GPU.0)."""
    head = device.partition(":")[0]
    wanted = hardware_devices(device) if head in VIRTUAL_DEVICES else [device]
    return [
        name
        for name in wanted
        if name not in available and not any(d.split(".")[0] == name for d in available)
    ]


def check_device(device: str, available: list[str]) -> None:
    """422 listing the worker's devices when `device` names one it does not have.

    With no device list yet (the worker has not started), anything goes: the engine checks.
    """
    if not available:
        return
    missing = missing_devices(device, available)
    if missing:
        raise ValidationError(
            f"Device {device!r} is not available on this host; available: {', '.join(available)}",
            code="device_not_available",
            details={"device": device, "missing": missing, "available": available},
        )


def host_device_names(row: HostRow) -> list[str]:
    return [str(d.get("name")) for d in row.devices]


def heartbeat_age_s(row: HostRow, now: datetime) -> float:
    return max(0.0, (now - row.heartbeat_at).total_seconds())


def host_state(row: HostRow, load: HostLoad | None, now: datetime, timeout_s: float) -> HostState:
    if heartbeat_age_s(row, now) > timeout_s:
        return "offline"
    if row.draining:
        return "draining"
    if (load is not None and load.running is not None) or row.current_job_id:
        return "busy"
    return "idle"


def estimated_run_s(params: Mapping[str, Any], settings: Settings) -> float:
    """How long a job will keep its host, as the scheduler counts it."""
    return wall_time_budget_s(params, settings) - settings.job_allowance_s + START_OVERHEAD_S


def work_ahead_s(load: HostLoad | None, now: datetime, settings: Settings) -> float:
    """Estimated seconds until a job queued now on this host would start."""
    if load is None:
        return 0.0
    ahead = sum(estimated_run_s(job.params, settings) for job in load.queued)
    running: JobRow | None = load.running
    if running is not None:
        elapsed_s = (now - running.started_at).total_seconds() if running.started_at else 0.0
        ahead += max(0.0, estimated_run_s(running.params, settings) - elapsed_s)
    return ahead


def choose_host(
    hosts: Sequence[HostRow],
    loads: Mapping[str, HostLoad],
    device: str,
    host: str | None,
    labels: Mapping[str, str] | None,
    now: datetime,
    settings: Settings,
) -> str:
    """The host a new job goes to (module docstring); ValidationError (422) when none can."""
    timeout_s = settings.heartbeat_timeout_s
    states = {row.name: host_state(row, loads.get(row.name), now, timeout_s) for row in hosts}
    live = [row for row in hosts if states[row.name] in ("idle", "busy")]
    offered = {row.name: host_device_names(row) for row in live}
    details: dict[str, Any] = {
        "device": device,
        "available": {name: devices for name, devices in offered.items()},
    }
    if host is not None:
        named = next((row for row in hosts if row.name == host), None)
        if named is None:
            raise ValidationError(
                f"No host named {host!r}; live hosts: {', '.join(offered) or 'none'}",
                code="host_not_found",
                details={**details, "host": host},
            )
        if states[host] not in ("idle", "busy"):
            raise ValidationError(
                f"Host {host!r} is {states[host]} and takes no new jobs; live hosts: "
                f"{', '.join(offered) or 'none'}",
                code="host_unavailable",
                details={**details, "host": host, "state": states[host]},
            )
    candidates = [
        row
        for row in live
        if (host is None or row.name == host)
        and all(row.labels.get(key) == value for key, value in (labels or {}).items())
        and not missing_devices(device, offered[row.name])
    ]
    if not candidates:
        scope = f"on host {host!r}" if host else "on any live host"
        if labels:
            scope += " with labels " + ", ".join(f"{k}={v}" for k, v in labels.items())
        now_offered = "; ".join(f"{n}: {', '.join(d) or 'none'}" for n, d in offered.items())
        raise ValidationError(
            f"Device {device!r} is not available {scope}; available now: "
            f"{now_offered or 'no live hosts'}",
            code="device_not_available",
            details={**details, "host": host, "host_labels": dict(labels or {})},
        )
    return min(
        candidates, key=lambda row: (work_ahead_s(loads.get(row.name), now, settings), row.name)
    ).name
