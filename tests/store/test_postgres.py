"""What only PostgreSQL has to get right: its schema from the migrations, migrating from
several processes at once, and timestamps whatever the session's time zone.

Against the session's real PostgreSQL (tests/servers.py), each test on a new database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, DateTime, inspect, text
from sqlalchemy.dialects.postgresql import JSON

from app.store import Store
from app.store.database import MIGRATIONS_DIR
from app.store.tables import ModelRow, new_id, utcnow
from tests.servers import PostgresServer
from tests.store.conftest import job_params

TABLES = {"models", "datasets", "jobs", "devices", "workers", "hosts", "sweeps", "deliveries"}


def _alembic(store: Store, revision: str, downgrade: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)


def _model(store: Store) -> ModelRow:
    row, _ = store.catalog.add_model(
        ModelRow(
            id=new_id(),
            name="m",
            format="openvino_ir",
            sha256=new_id() * 2,
            size_bytes=1,
            files=[],
            description={},
            created_at=utcnow(),
        )
    )
    return row


def test_migrations_from_an_empty_database_to_head_and_back(
    tmp_path: Path, postgres_url: str
) -> None:
    store = Store(tmp_path / "data", database_url=postgres_url)
    assert store.engine.dialect.name == "postgresql"
    assert inspect(store.engine).get_table_names() == []
    store.migrate()
    store.migrate()  # a second run is a no-op
    schema = inspect(store.engine)
    assert set(schema.get_table_names()) == {*TABLES, "alembic_version"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
    columns = {c["name"]: c["type"] for c in schema.get_columns("jobs")}
    assert isinstance(columns["params"], JSON) and isinstance(columns["result"], JSON)
    assert isinstance(columns["progress_iterations"], BigInteger)
    for name in ("created_at", "started_at", "finished_at"):
        column = columns[name]
        assert isinstance(column, DateTime) and not column.timezone
    indexes = {i["name"]: i for i in schema.get_indexes("jobs")}
    assert indexes["ix_jobs_idempotency_key"]["unique"]
    assert indexes["ix_jobs_idempotency_key"]["column_names"] == ["idempotency_key"]
    assert {"ix_jobs_status", "ix_jobs_created_at"} <= set(indexes)
    checks = {c["name"]: c["sqltext"] for c in schema.get_check_constraints("jobs")}
    assert "result" in checks["ck_jobs_succeeded_has_result"]
    assert schema.get_indexes("models")[0]["unique"]  # one row per model content

    _alembic(store, "base", downgrade=True)
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
    _alembic(store, "0001")  # the first schema alone, then the step to head on top of it
    job_columns = {c["name"] for c in inspect(store.engine).get_columns("jobs")}
    assert "idempotency_key" not in job_columns
    store.migrate()
    model = _model(store)
    job = store.jobs.create(job_params(model.id), max_queue=10)
    assert store.jobs.claim_next(1) is not None
    assert store.jobs.finish_succeeded(job.id, {"throughput_fps": 1.0, "iterations": 1})
    store.close()


# One process of `ovbench serve`: connects, says "ready", migrates when told "go" on stdin.
_MIGRATE = """
import sys
import time
from sqlalchemy import text
from app.store import Store
store = Store(sys.argv[1], database_url=sys.argv[2])
with store.engine.connect() as conn:
    conn.execute(text("SELECT 1"))
print("ready", flush=True)
sys.stdin.readline()
store.migrate()
store.close()
print("migrated", flush=True)
"""


def test_processes_that_start_together_migrate_one_after_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    """API replicas starting at once on one empty database: every one migrates, none fails
    on a table another is creating at the same moment."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, str(tmp_path / f"data{i}"), postgres_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        for process in processes:  # all connected before any migrates
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    for process, (out, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0 and out == "migrated\n", err[-2000:]
    store = Store(tmp_path / "data", database_url=postgres_url)
    assert set(inspect(store.engine).get_table_names()) >= TABLES
    store.close()


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns"])
def test_timestamps_do_not_move_with_the_session_time_zone(
    tmp_path: Path, postgres_url: str, zone: str
) -> None:
    """Naive UTC in `timestamp without time zone`: a session in another zone (a server or a
    role configured so) stores and reads the same instants."""
    url = f"{postgres_url}?options=-c%20TimeZone%3D{zone.replace('/', '%2F')}"
    store = Store(tmp_path / "data", database_url=url)
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.execute(text("SHOW TimeZone")).scalar() == zone
    model = _model(store)
    before = utcnow()
    job = store.jobs.create(job_params(model.id), max_queue=10)
    store.jobs.claim_next(1)
    after = utcnow()
    read = store.jobs.get(job.id)
    for stamp in (read.created_at, read.started_at):
        assert stamp is not None and before <= stamp <= after
    with store.engine.connect() as conn:  # as another client reads them: UTC wall-clock time
        stored = conn.execute(
            text("SELECT created_at FROM jobs WHERE id = :id"), {"id": job.id}
        ).scalar()
    assert stored == read.created_at.replace(tzinfo=None)
    store.close()


def test_a_url_with_an_encoded_password_migrates_and_works(
    tmp_path: Path, postgres: PostgresServer, postgres_url: str
) -> None:
    """A password with URL-encoded characters (%40 is @): the migration's config must not
    read its % as interpolation. (The test server trusts loopback: any password will do.)"""
    database = postgres_url.rsplit("/", 1)[1]
    url = f"postgresql+psycopg://postgres:p%40ss%25w0rd@{postgres.host}:{postgres.port}/{database}"
    store = Store(tmp_path / "data", database_url=url)
    store.migrate()
    model = _model(store)
    assert store.jobs.create(job_params(model.id), max_queue=10).status == "queued"
    store.close()


def test_one_process_at_a_time_holds_the_database(tmp_path: Path, postgres_url: str) -> None:
    """What `ovbench serve` takes at start-up (it fails interrupted jobs and clears the worker
    slot, right only when no other serve shares the database); a crash frees it too."""
    first = Store(tmp_path / "a", database_url=postgres_url)
    second = Store(tmp_path / "b", database_url=postgres_url)
    assert first.lock_database() and first.lock_database()  # held: asking again is fine
    assert not second.lock_database()
    first.close()
    assert second.lock_database()
    second.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "c"), postgres_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        third = Store(tmp_path / "d", database_url=postgres_url)
        assert not third.lock_database()
        holder.kill()  # kill -9: the server sees the connection go and drops the lock
        holder.wait()
        deadline = time.monotonic() + 10
        while not third.lock_database():
            assert time.monotonic() < deadline, "the lock outlived its holder's kill -9"
            time.sleep(0.05)
        third.close()
    finally:
        holder.kill()
        holder.wait()


_HOLD = """
import sys
import time
from app.store import Store
store = Store(sys.argv[1], database_url=sys.argv[2])
assert store.lock_database()
print("held", flush=True)
sys.stdin.readline()
"""
