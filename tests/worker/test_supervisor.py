"""The supervisor's hand-over to the worker process: what goes on its command line and what
in its environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import Settings
from app.worker.supervisor import DATABASE_URL_ENV, worker_environment

URL = "postgresql+psycopg://ovbench:s3cret@127.0.0.1:5432/ovbench"


def test_the_database_url_reaches_the_worker_by_its_environment_not_its_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=URL)
    command_line = settings.model_dump_json()  # what the supervisor puts on the command line
    assert "s3cret" not in command_line and "database_url" not in json.loads(command_line)
    env = worker_environment(settings)
    assert env[DATABASE_URL_ENV] == URL
    # The worker's side (app/worker/__main__.py): Settings from that JSON, in that environment.
    monkeypatch.setenv(DATABASE_URL_ENV, env[DATABASE_URL_ENV])
    assert Settings(**json.loads(command_line)).database_url == URL


def test_a_worker_of_a_sqlite_service_never_inherits_another_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, URL)  # the serve process's own environment
    settings = Settings(data_dir=tmp_path, database_url=None)  # but it was told: SQLite
    assert DATABASE_URL_ENV not in worker_environment(settings)
