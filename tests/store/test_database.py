"""The database file: pragmas, migrations, persistence across a reopen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from app.store import Store
from tests.store.conftest import job_params


def test_sqlite_runs_in_wal_with_full_sync(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0


def test_migrations_create_every_table_and_are_idempotent(store: Store) -> None:
    store.migrate()  # a second run is a no-op
    tables = set(inspect(store.engine).get_table_names())
    assert {"models", "datasets", "jobs", "devices", "workers", "alembic_version"} <= tables
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"


def test_state_survives_reopening_the_data_dir(
    tmp_path: Path, model_row: object, store: Store
) -> None:
    job = store.jobs.create(job_params(store.catalog.list_models()[0].id), max_queue=10)
    store.close()
    reopened = Store(store.data_dir, database_url=store.database_url)
    reopened.migrate()
    assert reopened.jobs.get(job.id).status == "queued"
    assert [m.id for m in reopened.catalog.list_models()] == [
        m.id for m in store.catalog.list_models()
    ]
    reopened.close()


def test_change_token_moves_with_every_commit_from_any_process(sqlite_store: Store) -> None:
    store = sqlite_store
    first = store.change_token()
    assert first is not None
    assert store.change_token() == first  # reads alone change nothing
    store.catalog.list_models()
    assert store.change_token() == first
    store.workers.record_start(pid=1)  # a commit through the store's own pool
    second = store.change_token()
    assert second != first
    code = (
        "import sys; from app.store import Store; "
        "s = Store(sys.argv[1]); s.workers.heartbeat(pid=1, current_job_id=None); s.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(store.data_dir)], check=True)
    assert store.change_token() != second  # a commit by another process, as the worker's


def test_change_token_is_none_off_sqlite(tmp_path: Path, postgres_url: str) -> None:
    other = Store(tmp_path / "data", database_url="sqlite://")  # in memory: nothing to watch
    assert other.change_token() is None
    other.close()
    on_postgres = Store(tmp_path / "data", database_url=postgres_url)
    on_postgres.migrate()
    assert on_postgres.change_token() is None
    on_postgres.workers.record_start(pid=1)
    assert on_postgres.change_token() is None  # no counter to follow: nothing may be cached
    on_postgres.close()
