"""Reliability fixtures: the e2e server fixtures plus helpers for killing and restarting it."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Server, e2e_files, make_server, pid_alive, wait_for

__all__ = ["e2e_files", "make_server"]


def kill_service(server: Server) -> None:
    """kill -9 the serve process and everything in its group (the worker), and reap it."""
    assert server.process is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def restart(make_server: Callable[..., Server], old: Server) -> Server:
    """A new `ovbench serve` on the same data dir with the same environment."""
    return make_server(old.data_dir, env=old.env)


def staging_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "tmp").iterdir())


def blob_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "blobs").rglob("*") if p.is_file())


def worker_changed(server: Server, old_pid: int) -> int | None:
    """The new worker's pid once the old one is dead and a new one reports ready."""
    if pid_alive(old_pid):
        return None
    response = server.client.get("/readyz")
    if response.status_code != 200:
        return None
    pid: int = response.json()["worker"]["pid"]
    return pid if pid != old_pid else None


__all__ += ["blob_files", "kill_service", "restart", "staging_files", "wait_for", "worker_changed"]
