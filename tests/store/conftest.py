"""Fixtures for store tests: a migrated store in a temp data dir, with one model row.

`store` runs every test twice: on SQLite (the file in the data dir, the default) and on a
fresh database of the session's real PostgreSQL (tests/servers.py). `sqlite_store` is for
what only SQLite has (pragmas, its change token).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store import Store
from app.store.tables import DatasetRow, ModelRow, new_id, utcnow


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data dir) or the URL of a new PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[Store]:
    s = Store(tmp_path / "data", database_url=database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data")
    s.migrate()
    yield s
    s.close()


def put_blob(store: Store, content: bytes, name: str = "f") -> str:
    staged = store.blobs.stage(1 << 20, filename=name)
    staged.write(content)
    store.blobs.commit(staged)
    return staged.sha256


@pytest.fixture
def model_row(store: Store) -> ModelRow:
    return add_model_row(store)


def add_model_row(store: Store) -> ModelRow:
    """A model row with two small blobs as its files (not a model OpenVINO can read)."""
    xml = put_blob(store, b"<xml/>")
    weights = put_blob(store, b"\0" * 16)
    files = [
        {"name": "model.xml", "original_name": "a.xml", "sha256": xml, "size_bytes": 6},
        {"name": "model.bin", "original_name": "a.bin", "sha256": weights, "size_bytes": 16},
    ]
    row, created = store.catalog.add_model(
        ModelRow(
            id=new_id(),
            name="a",
            format="openvino_ir",
            sha256="f" * 64,
            size_bytes=22,
            files=files,
            description={"inputs": [], "outputs": []},
            created_at=utcnow(),
        )
    )
    assert created
    return row


@pytest.fixture
def dataset_row(store: Store) -> DatasetRow:
    sha = put_blob(store, b"image-bytes")
    return store.catalog.add_dataset(
        DatasetRow(
            id=new_id(),
            count=1,
            size_bytes=11,
            files=[{"name": "a.png", "sha256": sha, "size_bytes": 11, "kind": "image"}],
            created_at=utcnow(),
        )
    )


def job_params(model_id: str, **extra: object) -> dict[str, object]:
    return {"model_id": model_id, "device": "CPU", "api": "sync", "niter": 1, **extra}
