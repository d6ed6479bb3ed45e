"""Content-addressed files: staging, size limit, atomic commit, dedupe, materialised dirs."""

from __future__ import annotations

import hashlib

import pytest

from app.errors import PayloadTooLargeError
from app.store import Store


def test_commit_stores_the_file_under_its_sha256(store: Store) -> None:
    staged = store.blobs.stage(100, filename="../../etc/passwd")
    staged.write(b"hello ")
    staged.write(b"world")
    final = store.blobs.commit(staged)
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert staged.sha256 == digest
    assert final == store.data_dir / "blobs" / digest[:2] / digest[2:]
    assert final.read_bytes() == b"hello world"
    assert list(store.blobs.tmp_dir.iterdir()) == []


def test_same_content_twice_keeps_one_blob(store: Store) -> None:
    paths = []
    for _ in range(2):
        staged = store.blobs.stage(100)
        staged.write(b"same")
        paths.append(store.blobs.commit(staged))
    assert paths[0] == paths[1]
    assert len(list(store.blobs.blobs_dir.rglob("*"))) == 2  # one prefix dir + one file
    assert list(store.blobs.tmp_dir.iterdir()) == []


def test_a_file_over_the_limit_is_refused_and_leaves_nothing(store: Store) -> None:
    staged = store.blobs.stage(10, filename="big.bin")
    staged.write(b"x" * 8)
    with pytest.raises(PayloadTooLargeError) as info:
        staged.write(b"x" * 8)
    assert "big.bin" in info.value.message
    assert info.value.status_code == 413
    assert list(store.blobs.tmp_dir.iterdir()) == []
    assert list(store.blobs.blobs_dir.iterdir()) == []


def test_materialise_links_blobs_under_safe_names(store: Store) -> None:
    staged = store.blobs.stage(100)
    staged.write(b"weights")
    store.blobs.commit(staged)
    directory = store.blobs.materialise(store.blobs.model_dir("m1"), {"model.bin": staged.sha256})
    assert (directory / "model.bin").read_bytes() == b"weights"
    (directory / "model.bin").unlink()  # rebuilt when incomplete
    store.blobs.materialise(directory, {"model.bin": staged.sha256})
    assert (directory / "model.bin").read_bytes() == b"weights"


def test_clean_tmp_removes_leftovers_of_a_crash(store: Store) -> None:
    staged = store.blobs.stage(100)
    staged.write(b"partial")
    assert store.blobs.clean_tmp() == 1
    assert list(store.blobs.tmp_dir.iterdir()) == []


def test_path_for_refuses_anything_but_a_sha256(store: Store) -> None:
    with pytest.raises(ValueError):
        store.blobs.path_for("../../x")
