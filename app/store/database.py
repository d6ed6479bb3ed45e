"""The database connection: SQLite in the data dir (WAL, synchronous=FULL) by default, or
PostgreSQL (`postgresql+psycopg://...`), and migrations.

Migrations are Alembic scripts shipped in `app/store/migrations/`, run programmatically
with a `Config` built here: no alembic.ini is needed at runtime. On PostgreSQL they run under
a transaction-scoped advisory lock, so processes that start together (several API replicas
on one database) migrate one after the other instead of racing to create the same tables.

PostgreSQL's text types cannot hold a NUL character, which SQLite stores and compares like
any other: every string bound to a statement on PostgreSQL has its NULs replaced by U+FFFD.
An id with a NUL in it (`GET /jobs/a%00b`) then matches nothing, as on SQLite, instead of
failing the statement (a 500), and a message with one is stored instead of lost.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_KEY = 0x6F7662656E6368  # "ovbench": pg_advisory_xact_lock's key for migrations
SERVE_LOCK_KEY = MIGRATION_LOCK_KEY + 1  # pg_advisory_lock: one `ovbench serve` per database
PLACEMENT_LOCK_KEY = (
    MIGRATION_LOCK_KEY + 2
)  # fleet: one placement (choose a host, insert) at a time
# PostgreSQL connections kept per process: the API serves up to 40 requests at once (AnyIO's
# thread pool), each with a session, so 40 stay open (10 more may open, and close on return).
# SQLAlchemy's default (5 + 10 overflow) opened 1,754 connections in 114 s of
# bench/fleet_sim.py, and 20 + 20 still 1,306 in 99 s.
PG_POOL_SIZE = 40
PG_MAX_OVERFLOW = 10
NUL_REPLACEMENT = "\ufffd"


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(item) for item in value)
    return value  # numbers, datetimes, JSON wrappers (json text escapes NUL as \u0000)


def _replace_nul_in_parameters(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> tuple[str, Any]:
    """before_cursor_execute on PostgreSQL: bound strings without NUL (module docstring)."""
    return statement, _without_nul(parameters)


def make_engine(database_url: str) -> Engine:
    """An engine for `database_url`; SQLite gets its pragmas on every new connection."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    engine = create_engine(
        database_url, pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW
    )
    if engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _replace_nul_in_parameters, retval=True)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser would read a % (a URL-encoded password, options) as interpolation.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # held until this transaction ends
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.debug("database at %s migrated to head", engine.url)
