"""Persistence: jobs, models, datasets (SQLAlchemy + Alembic) and content-addressed files."""

from app.store.store import Store

__all__ = ["Store"]
