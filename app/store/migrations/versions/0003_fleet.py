"""Fleet mode: device hosts, and jobs routed to them.

- `hosts`: one row per agent host (its devices, labels and facts, heartbeat, drain flag).
- `jobs.host` (the host a job is routed to and runs on; null on a single host),
  `jobs.dispatched_at` (when the API last handed the job to the broker) and
  `jobs.claim_token` (the agent's claim, so that a retried claim gets its job again).
- A unique partial index: at most one `running` job per host, whatever any process does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ONE_RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("current_job_id", sa.String(32), nullable=True),
        sa.Column("draining", sa.Boolean(), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("host", sa.String(64), nullable=True))
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("claim_token", sa.String(64), nullable=True))
    op.create_index("ix_jobs_host", "jobs", ["host"])
    op.create_index(
        "ux_jobs_one_running_per_host",
        "jobs",
        ["host"],
        unique=True,
        sqlite_where=ONE_RUNNING,
        postgresql_where=ONE_RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ux_jobs_one_running_per_host", table_name="jobs")
    op.drop_index("ix_jobs_host", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claim_token")
        batch.drop_column("dispatched_at")
        batch.drop_column("host")
    op.drop_table("hosts")
