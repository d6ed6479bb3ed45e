"""The store: the single source of truth shared by the API and the worker.

One data dir: the database (SQLAlchemy + Alembic: the SQLite file `ovbench.db` in the data
dir, or the one `database_url` names, e.g. PostgreSQL) and the content-addressed files, with
one repository per aggregate: `catalog` (models, datasets and their files, catalog.py),
`jobs` (the queue and every job's state, jobs.py; `job_stats`, its figures for /metrics,
job_stats.py), `sweeps` (grids of jobs, sweeps.py), `deliveries` (the webhook outbox, deliveries.py), `workers` (the local worker slot and its devices, workers.py) and `hosts`
(fleet mode's device hosts, hosts.py).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.store.blobs import BlobStore
from app.store.catalog import Catalog
from app.store.commit_signal import CommitSignal, open_commit_signal
from app.store.database import PLACEMENT_LOCK_KEY, SERVE_LOCK_KEY, make_engine, migrate
from app.store.deliveries import Deliveries
from app.store.hosts import Hosts
from app.store.job_stats import JobStats
from app.store.jobs import Jobs
from app.store.sweeps import Sweeps
from app.store.workers import Workers

logger = logging.getLogger(__name__)


class Store:
    """Database + blobs for one data dir, and its repositories."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str | None = None,
        max_data_bytes: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.data_dir, max_data_bytes=max_data_bytes)
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'ovbench.db'}"
        self.engine: Engine = make_engine(self.database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._version_lock = threading.Lock()
        self._version_connection: sqlite3.Connection | None = None
        self._lock_connection: Connection | None = None
        self.catalog = Catalog(self._sessions, self.blobs)
        self.jobs = Jobs(self._sessions)
        self.sweeps = Sweeps(self._sessions)
        self.jobs.on_sweep_child_ended = self.sweeps.advance
        self.job_stats = JobStats(self._sessions)
        self.hosts = Hosts(self._sessions)
        self.workers = Workers(self._sessions)
        self.deliveries = Deliveries(self._sessions)

    def migrate(self) -> None:
        migrate(self.engine)

    def lock_database(self) -> bool:
        """Hold the database for this process alone until `close()` or exit; False when
        another process holds it.

        `ovbench serve` marks `running` jobs as interrupted and clears the worker slot at
        start-up, which is only right when no other serve uses the same database. On SQLite
        the data dir's lock (serve.lock) says so already; on PostgreSQL a session advisory
        lock on a connection of its own does (the server drops it with that connection, at a
        kill -9 too).
        """
        if self.engine.dialect.name != "postgresql":
            return True
        if self._lock_connection is None:
            connection = self.engine.connect()
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": SERVE_LOCK_KEY}
            ).scalar()
            connection.commit()  # a session lock outlives the transaction: end it, not idle in one
            if not held:
                connection.close()
                return False
            self._lock_connection = connection
        return True

    @contextlib.contextmanager
    def placement_lock(self) -> Iterator[None]:
        """Fleet: one placement at a time across every API replica (a transaction-scoped
        advisory lock on PostgreSQL, held until the block ends), so that submissions made at
        the same moment see each other's jobs and do not all pick the same idle host."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        with self.engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLACEMENT_LOCK_KEY}
            )
            yield

    def close(self) -> None:
        with self._version_lock:
            if self._version_connection is not None:
                self._version_connection.close()
                self._version_connection = None
        if self._lock_connection is not None:
            # Unlock first: the server drops a closed connection's locks only once it has
            # noticed the close, so another process asking at once could still be refused.
            with contextlib.suppress(Exception):
                self._lock_connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": SERVE_LOCK_KEY}
                )
                self._lock_connection.commit()
            self._lock_connection.invalidate()  # closed for real, not pooled: the lock goes
            self._lock_connection.close()
            self._lock_connection = None
        self.engine.dispose()

    def change_token(self) -> int | None:
        """A number that changes whenever any connection of any process commits to the
        database, for caches of what the database says; None where the backend has no such
        counter (then nothing may be cached).

        SQLite's `PRAGMA data_version` on a connection of its own that never writes: one
        read of the WAL index, a few microseconds.
        """
        if self.engine.dialect.name != "sqlite" or self.engine.url.database in (
            None,
            "",
            ":memory:",
        ):
            return None
        with self._version_lock:
            if self._version_connection is None:
                self._version_connection = sqlite3.connect(
                    self.engine.url.database, isolation_level=None, check_same_thread=False
                )
            row = self._version_connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def commit_signal(self) -> CommitSignal | None:
        """A descriptor that becomes readable when any process commits (an inotify watch on
        SQLite's WAL file, app/store/commit_signal.py); None for PostgreSQL, an in-memory
        database, or where inotify cannot watch (then poll `change_token`)."""
        if self.change_token() is None:  # also opens the WAL: a reader's connection is open
            return None
        return open_commit_signal(Path(f"{self.engine.url.database}-wal"))

    def session(self) -> Session:
        return self._sessions()
