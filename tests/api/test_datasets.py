"""POST/GET/DELETE /datasets: images checked, .npy allowed, refusals name the file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.store import Store
from tests.api.conftest import assert_error


def test_upload_checks_and_lists_the_images(dataset: dict[str, Any], images_dir: Path) -> None:
    assert dataset["count"] == len(list(images_dir.iterdir()))
    by_name = {f["name"]: f for f in dataset["files"]}
    assert set(by_name) == {p.name for p in images_dir.iterdir()}
    assert all(
        f["kind"] == "image" and (f["width"], f["height"]) == (8, 6)
        for f in by_name.values()
        if f["name"] != "gradient.png"
    )


def test_npy_files_are_accepted(client: TestClient, store: Store) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 4), dtype=np.float32))
    response = client.post("/datasets", files={"file": ("im_info.npy", buffer.getvalue())})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["files"][0]["kind"] == "npy"
    assert (store.blobs.dataset_dir(body["id"]) / "im_info.npy").exists()


def test_undecodable_image_is_refused_naming_the_file(
    client: TestClient, store: Store, images_dir: Path
) -> None:
    files = [
        ("file", ("good.png", (images_dir / "red.png").read_bytes())),
        ("file", ("broken.png", b"\x89PNG nope")),
    ]
    error = assert_error(client.post("/datasets", files=files), 422, "invalid_image")
    assert "broken.png" in error["message"] and "upload-" not in error["message"]
    assert client.get("/datasets").json() == []
    assert list(store.blobs.tmp_dir.iterdir()) == []
    assert list(store.blobs.blobs_dir.iterdir()) == []


def test_bad_npy_and_unknown_types_are_refused(client: TestClient) -> None:
    assert (
        "x.npy"
        in assert_error(client.post("/datasets", files={"file": ("x.npy", b"nope")}), 422)[
            "message"
        ]
    )
    assert (
        "a.txt"
        in assert_error(client.post("/datasets", files={"file": ("a.txt", b"hi")}), 415)["message"]
    )
    assert_error(client.post("/datasets", data={"x": "1"}), 415)  # urlencoded, not multipart
    assert_error(client.post("/datasets", files={"file": ("a.png", b"")}, data={"x": "1"}), 422)


def test_client_paths_are_never_used(client: TestClient, store: Store, images_dir: Path) -> None:
    files = [("file", ("../../../escape.png", (images_dir / "red.png").read_bytes()))]
    body = client.post("/datasets", files=files).json()
    [entry] = body["files"]
    assert "/" not in entry["name"] and not entry["name"].startswith(".")
    assert (store.blobs.dataset_dir(body["id"]) / entry["name"]).exists()
    assert not (store.data_dir.parent.parent / "escape.png").exists()


def test_get_and_delete(client: TestClient, dataset: dict[str, Any], store: Store) -> None:
    assert client.get(f"/datasets/{dataset['id']}").json() == dataset
    assert client.delete(f"/datasets/{dataset['id']}").status_code == 204
    assert_error(client.get(f"/datasets/{dataset['id']}"), 404, "dataset_not_found")
    assert list(store.blobs.blobs_dir.rglob("*.*")) == []
