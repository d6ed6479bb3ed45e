"""Fixtures for worker tests: a store holding the tiny model, and a worker over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.ingest import ingest_dataset, ingest_model
from app.settings import Settings
from app.store import Store
from app.store.tables import DatasetRow, ModelRow
from app.worker.worker import Worker


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        worker_poll_interval_s=0.05,
        run_lock_path=tmp_path / "run.lock",  # never the host's lock
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.data_dir)
    s.migrate()
    yield s
    s.close()


def _stage(store: Store, path: Path, name: str | None = None) -> object:
    staged = store.blobs.stage(1 << 30, filename=name or path.name)
    staged.write(path.read_bytes())
    staged.finish()
    return staged


@pytest.fixture
def model(store: Store, tiny_model: Path) -> ModelRow:
    files = [_stage(store, tiny_model), _stage(store, tiny_model.with_suffix(".bin"))]
    row, _ = ingest_model(store, files, None)  # type: ignore[arg-type]
    return row


@pytest.fixture
def dataset(store: Store, images_dir: Path) -> DatasetRow:
    return ingest_dataset(store, [_stage(store, p) for p in sorted(images_dir.iterdir())])  # type: ignore[misc]


@pytest.fixture
def worker(settings: Settings, store: Store) -> Worker:
    return Worker(settings, store)
