"""Initial schema: models, datasets, jobs, devices, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("description", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_models_sha256", "models", ["sha256"], unique=True)

    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=True),
        sa.Column("device", sa.String(255), nullable=False),
        sa.Column("api", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("progress_fraction", sa.Float(), nullable=False),
        # 64-bit on PostgreSQL (a long run of a tiny model passes 2^31 iterations); SQLite's
        # INTEGER is 64-bit already and its schema stays as it was.
        sa.Column(
            "progress_iterations",
            sa.Integer().with_variant(sa.BigInteger(), "postgresql"),
            nullable=False,
        ),
        sa.Column("progress_elapsed_s", sa.Float(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("run_duration_s", sa.Float(), nullable=True),
        sa.Column("throughput_fps", sa.Float(), nullable=True),
        sa.Column("latency_median_ms", sa.Float(), nullable=True),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_model_id", "jobs", ["model_id"])
    op.create_index("ix_jobs_dataset_id", "jobs", ["dataset_id"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])

    op.create_table(
        "devices",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("full_name", sa.String(512), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )

    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("current_job_id", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("devices")
    op.drop_index("ix_jobs_created_at", "jobs")
    op.drop_index("ix_jobs_dataset_id", "jobs")
    op.drop_index("ix_jobs_model_id", "jobs")
    op.drop_index("ix_jobs_status", "jobs")
    op.drop_table("jobs")
    op.drop_table("datasets")
    op.drop_index("ix_models_sha256", "models")
    op.drop_table("models")
