"""`ovbench serve` in fleet mode refuses what cannot work, naming the setting to fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import OVBENCH, free_port, run_until_exit


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "fleet mode (OVBENCH_BROKER_URL is set) needs PostgreSQL: set OVBENCH_DATABASE_URL="),
        (
            {"OVBENCH_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/db"},
            "fleet mode needs agent tokens: set OVBENCH_AGENT_TOKENS=host1=token1",
        ),
        (
            {
                "OVBENCH_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/db",
                "OVBENCH_AGENT_TOKENS": "lab a=secret",
            },
            "OVBENCH_AGENT_TOKENS: 'lab a' is not name=token",
        ),
    ],
)
def test_fleet_serve_refuses_a_setup_that_cannot_work(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OVBENCH_")}
    proc, out = run_until_exit(
        [str(OVBENCH), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")],
        {**base, "OVBENCH_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//", **env},
    )
    assert proc.returncode == 1, out
    assert says in out, out
    assert "Traceback" not in out
