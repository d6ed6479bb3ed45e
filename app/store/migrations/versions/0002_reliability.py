"""Reliability: idempotency keys on jobs, and `succeeded` only with a result.

- `jobs.idempotency_key` (unique when set) and `jobs.request_hash` (a digest of the request
  that created the job), so a repeated POST /jobs with the same `Idempotency-Key` returns
  the same job, and the same key with a different body is refused.
- A CHECK constraint: a job can only be `succeeded` with a non-null result, whatever code
  writes the row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SUCCEEDED_HAS_RESULT = "status != 'succeeded' OR (result IS NOT NULL AND result != 'null')"
# PostgreSQL's `json` has no comparison operators: compare its text (a JSON null is 'null').
SUCCEEDED_HAS_RESULT_PG = "status != 'succeeded' OR (result IS NOT NULL AND result::text != 'null')"


def _recreate() -> Literal["always", "auto"]:
    """SQLite rebuilds the table (it cannot add a CHECK in place); others ALTER it."""
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("jobs", recreate=_recreate()) as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
        batch.create_index("ix_jobs_idempotency_key", ["idempotency_key"], unique=True)
        batch.create_check_constraint(
            "ck_jobs_succeeded_has_result",
            SUCCEEDED_HAS_RESULT_PG if postgresql else SUCCEEDED_HAS_RESULT,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", recreate=_recreate()) as batch:
        batch.drop_constraint("ck_jobs_succeeded_has_result", type_="check")
        batch.drop_index("ix_jobs_idempotency_key")
        batch.drop_column("request_hash")
        batch.drop_column("idempotency_key")
