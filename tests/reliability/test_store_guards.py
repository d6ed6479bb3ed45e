"""Store-level halves of guarantees 1 and 10, without a server: fast and exact."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.errors import InsufficientStorageError, ValidationError
from app.store import Store
from app.store.tables import ModelRow, utcnow

QUOTA = 1 << 20


def _store(tmp_path: Path, max_data_bytes: int | None = None) -> Store:
    store = Store(tmp_path / "data", max_data_bytes=max_data_bytes)
    store.migrate()
    return store


def _model(store: Store) -> str:
    row = ModelRow(
        id="m" * 32,
        name="m",
        format="openvino_ir",
        sha256="0" * 64,
        size_bytes=1,
        files=[],
        description={},
        created_at=utcnow(),
    )
    return store.catalog.add_model(row)[0].id


def test_concurrent_submissions_with_one_key_create_one_job(tmp_path: Path) -> None:
    store = _store(tmp_path)
    model_id = _model(store)
    params = {"model_id": model_id, "device": "CPU", "api": "sync", "niter": 1}
    stores = [Store(store.data_dir) for _ in range(6)]  # separate connections, like processes
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda s: s.jobs.submit(params, 100, "k1", "h1"), stores))
    assert len({row.id for row, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with pytest.raises(ValidationError) as error:
        store.jobs.submit(params, 100, "k1", "another-request")
    assert error.value.code == "idempotency_key_reused" and error.value.status_code == 422
    for s in stores:
        s.close()
    store.close()


def test_the_quota_counts_stored_and_staging_bytes_and_drops_what_would_pass_it(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path, max_data_bytes=QUOTA)
    blobs = store.blobs
    room = QUOTA - blobs.disk_usage()
    assert room > 200_000
    first = blobs.stage(1 << 30, filename="a.npy")
    first.write(b"a" * (room // 2))
    second = blobs.stage(1 << 30, filename="b.npy")
    with pytest.raises(InsufficientStorageError) as error:
        second.write(b"b" * (room // 2 + 10))  # fits alone, not beside the first upload
    assert error.value.status_code == 507 and error.value.code == "insufficient_storage"
    assert not second.path.exists()  # dropped at once
    blobs.commit(first)  # now stored, still counted
    third = blobs.stage(1 << 30, filename="c.npy")
    with pytest.raises(InsufficientStorageError):
        third.write(b"c" * (room // 2 + 10))
    fourth = blobs.stage(1 << 30, filename="d.npy")
    fourth.write(b"d" * (room // 4))  # what is left still fits
    fourth.discard()
    assert list(blobs.tmp_dir.iterdir()) == []
    store.close()


def test_the_sweep_keeps_referenced_and_young_files(tmp_path: Path) -> None:
    store = _store(tmp_path)
    blobs = store.blobs
    staged = blobs.stage(1 << 20, filename="kept.bin")
    staged.write(b"kept")
    kept = blobs.commit(staged)
    store.catalog.add_model(
        ModelRow(
            id="k" * 32,
            name="k",
            format="openvino_ir",
            sha256="1" * 64,
            size_bytes=4,
            files=[{"name": "model.bin", "sha256": hashlib.sha256(b"kept").hexdigest()}],
            description={},
            created_at=utcnow(),
        )
    )
    old_orphan = blobs.path_for("a" * 64)
    young_orphan = blobs.path_for("b" * 64)
    for path in (old_orphan, young_orphan):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"orphan")
    past = time.time() - 3600
    os.utime(old_orphan, (past, past))
    os.utime(kept, (past, past))
    assert store.catalog.sweep_unreferenced(grace_s=600) == 1
    assert kept.exists() and young_orphan.exists() and not old_orphan.exists()
    assert store.catalog.sweep_unreferenced(grace_s=0) == 1  # start-up: no grace
    assert kept.exists() and not young_orphan.exists()
    store.close()
