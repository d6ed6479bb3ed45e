"""app/faults.py: armed fault points kill or hang the process; unarmed ones do nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from app import faults
from tests.e2e.conftest import wait_for


def _run(code: str, env: dict[str, str] | None = None, timeout_s: float = 20) -> int:
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **(env or {})},
        stderr=subprocess.DEVNULL,
    )
    try:
        return process.wait(timeout=timeout_s)
    finally:
        process.kill()
        process.wait()


def test_an_armed_fault_point_sigkills_the_process() -> None:
    code = """
        from app.faults import configure_faults, fault_point
        configure_faults("after_claim,before_result")
        fault_point("after_claim")
        raise SystemExit(3)
    """
    assert _run(code) == -signal.SIGKILL


def test_the_environment_alone_arms_nothing_at_import_time() -> None:
    code = """
        from app.faults import fault_point
        fault_point("before_result")
        raise SystemExit(3)
    """
    assert _run(code, env={"OVBENCH_FAULT": "before_result"}) == 3


def _blocks_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        mask = next(int(line.split()[1], 16) for line in status if line.startswith("SigBlk:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def test_a_hang_fault_point_blocks_even_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.faults import configure_faults, fault_point\n"
            "configure_faults('hang_in_run'); print('armed', flush=True)\n"
            "fault_point('hang_in_run')",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "armed"
        wait_for(lambda: _blocks_sigterm(process.pid), 10, "the hang to block SIGTERM")
        process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)  # still stuck: only SIGKILL ends it
        process.kill()
        assert process.wait(timeout=5) == -signal.SIGKILL
    finally:
        process.kill()
        process.wait()


def test_unarmed_and_unknown_names_are_no_ops() -> None:
    try:
        assert faults.configure_faults("no_such_point, ") == frozenset()
        faults.fault_point("before_result")
        faults.fault_point("hang_in_run")
        assert faults.configure_faults("before_result") == {"before_result"}
        faults.fault_point("after_claim")  # another point: still nothing
    finally:
        faults.configure_faults("")
