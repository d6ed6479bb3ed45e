"""Guarantees 7, 8 and 10: atomic uploads, graceful stop, the data dir quota and retention."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np

from tests.e2e.conftest import Server, wait_for
from tests.reliability.conftest import blob_files, kill_service, restart, staging_files

BOUNDARY = "ovbench-reliability-boundary"
FIRST_PART_BYTES = 3 << 19  # 1.5 MiB: past the 1 MiB the server buffers before staging


def npy_bytes(mib: int, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    np.save(buffer, rng.standard_normal((mib << 18,), dtype=np.float32))  # 4 bytes each
    return buffer.getvalue()


class SlowUpload:
    """POST /datasets with one .npy, sent in two halves: the second only after `resume()`."""

    def __init__(self, server: Server, content: bytes) -> None:
        self.content = content
        self._go = threading.Event()
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="input.npy"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self._first = head + content[:FIRST_PART_BYTES]
        self._rest = content[FIRST_PART_BYTES:] + f"\r\n--{BOUNDARY}--\r\n".encode()
        self._client = httpx.Client(base_url=server.url, timeout=30)
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        yield self._first
        self._go.wait(30)
        for start in range(0, len(self._rest), 1 << 18):
            yield self._rest[start : start + (1 << 18)]

    def _send(self) -> None:
        try:
            self.response = self._client.post(
                "/datasets",
                content=self._body(),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
        except Exception as exc:
            self.error = exc
        finally:
            self._client.close()

    def resume(self) -> None:
        self._go.set()

    def join(self) -> None:
        self._go.set()
        self._thread.join(timeout=30)


def _partly_staged(data_dir: Path) -> list[Path] | None:
    staged = [p for p in staging_files(data_dir) if p.stat().st_size > 0]
    return staged or None


def test_kill_9_mid_upload_leaves_nothing_and_a_reupload_gives_the_same_hash(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    content = npy_bytes(3)
    upload = SlowUpload(server, content)
    partial = wait_for(lambda: _partly_staged(server.data_dir), 10, "a half-written staging file")
    kill_service(server)
    upload.join()
    assert upload.response is None and isinstance(upload.error, httpx.TransportError)
    assert partial[0].exists()  # the crash left it: nothing cleaned up after a kill -9
    assert blob_files(server.data_dir) == []  # nothing under a final name
    assert list((server.data_dir / "datasets").iterdir()) == []
    (server.data_dir / "tmp" / "upload-stale-from-an-older-crash").write_bytes(b"x" * 1000)

    after = restart(make_server, server)
    assert staging_files(after.data_dir) == []  # swept at start-up
    assert after.client.get("/datasets").json() == []
    files = [("file", ("input.npy", content))]
    first = after.client.post("/datasets", files=files)
    second = after.client.post("/datasets", files=files)
    assert first.status_code == second.status_code == 201, first.text
    sha = hashlib.sha256(content).hexdigest()
    assert first.json()["files"][0]["sha256"] == second.json()["files"][0]["sha256"] == sha
    assert [p.parent.name + p.name for p in blob_files(after.data_dir)] == [sha]
    model = after.upload_model(e2e_files[0])
    again = after.upload_model(e2e_files[0])
    assert (model.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == model.json()["id"]
    assert again.json()["sha256"] == model.json()["sha256"]
    assert staging_files(after.data_dir) == []


def test_sigterm_finishes_in_flight_requests_records_the_running_job_and_exits_0(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server()
    model_id = server.upload_model(e2e_files[0]).json()["id"]
    running = server.submit(model_id=model_id, api="async", duration_s=60)
    server.wait_running(running["id"])
    content = npy_bytes(3, seed=1)
    upload = SlowUpload(server, content)
    wait_for(lambda: _partly_staged(server.data_dir), 10, "the upload to be in flight")
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    upload.resume()
    server.process.wait(timeout=15)
    took_s = time.monotonic() - started
    upload.join()
    assert server.process.returncode == 0
    assert took_s < 10
    assert upload.response is not None, upload.error
    assert upload.response.status_code == 201, upload.response.text  # finished, not cut off
    dataset_id = upload.response.json()["id"]

    after = restart(make_server, server)
    assert after.client.get(f"/datasets/{dataset_id}").status_code == 200
    stopped = after.job(running["id"])
    assert stopped["status"] == "cancelled", stopped
    assert "shut down" in stopped["error"]["message"]


QUOTA_BYTES = 16 << 20


def test_an_upload_past_the_quota_is_507_and_leaves_nothing_behind(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    server = make_server(env={"OVBENCH_MAX_DATA_BYTES": str(QUOTA_BYTES)})
    model = server.upload_model(e2e_files[0])
    assert model.status_code == 201
    blobs_before = blob_files(server.data_dir)

    too_big = server.client.post("/datasets", files=[("file", ("big.npy", npy_bytes(20)))])
    assert too_big.status_code == 507, too_big.text
    body = too_big.json()
    assert set(body) == {"error"} and body["error"]["code"] == "insufficient_storage"
    assert body["error"]["details"]["max_data_bytes"] == QUOTA_BYTES
    assert "OVBENCH_MAX_DATA_BYTES" in body["error"]["message"]
    assert staging_files(server.data_dir) == []
    assert blob_files(server.data_dir) == blobs_before
    assert server.client.get("/datasets").json() == []

    one_shot = server.client.post(
        "/jobs",
        files=[("inputs", ("big.npy", npy_bytes(20)))],
        data={"device": "CPU", "api": "sync", "niter": "1", "model_id": model.json()["id"]},
    )
    assert one_shot.status_code == 507, one_shot.text
    assert server.client.get("/jobs").json() == []
    assert staging_files(server.data_dir) == []

    fits = server.client.post("/datasets", files=[("file", ("small.npy", npy_bytes(1)))])
    assert fits.status_code == 201, fits.text  # the service is fine, and under quota
    job = server.submit(model_id=model.json()["id"], niter=2)
    assert server.wait_job(job["id"])["status"] == "succeeded"


def _orphans(data_dir: Path, age_s: float) -> list[Path]:
    """Files no row refers to: a blob, a model dir, a dataset dir, a staging file."""
    blob = data_dir / "blobs" / "ab" / ("c" * 62)
    model_dir = data_dir / "models" / ("0" * 32)
    dataset_dir = data_dir / "datasets" / ("1" * 32)
    staged = data_dir / "tmp" / "upload-orphan"
    for directory in (blob.parent, model_dir, dataset_dir, staged.parent):
        directory.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"orphan")
    (model_dir / "model.xml").write_bytes(b"<net/>")
    (dataset_dir / "a.npy").write_bytes(b"x")
    staged.write_bytes(b"partial")
    past = time.time() - age_s
    for path in (blob, model_dir, dataset_dir, staged):
        os.utime(path, (past, past))
    return [blob, model_dir, dataset_dir, staged]


def test_retention_sweeps_unreferenced_files_at_start_up_and_periodically(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path]
) -> None:
    env = {"OVBENCH_RETENTION_INTERVAL_S": "0.5", "OVBENCH_RETENTION_GRACE_S": "60"}
    server = make_server(env=env)
    model = server.upload_model(e2e_files[0]).json()
    dataset = server.upload_images(e2e_files[1]).json()
    done = server.submit(model_id=model["id"], dataset_id=dataset["id"], niter=2)
    assert server.wait_job(done["id"])["status"] == "succeeded"
    kept = blob_files(server.data_dir)
    assert len(kept) == 2 + len(dataset["files"])  # xml, bin, the images
    server.stop()

    orphans = _orphans(server.data_dir, age_s=0)  # fresh: start-up sweeps regardless of age
    after = restart(make_server, server)
    assert not any(p.exists() for p in orphans)
    assert blob_files(after.data_dir) == kept
    again = after.submit(model_id=model["id"], dataset_id=dataset["id"], niter=2)
    assert after.wait_job(again["id"])["status"] == "succeeded"  # referenced files intact

    old = _orphans(after.data_dir, age_s=120)
    young = after.data_dir / "blobs" / "cd" / ("e" * 62)  # e.g. an upload about to commit
    young.parent.mkdir(exist_ok=True)
    young.write_bytes(b"in flight")
    wait_for(lambda: not any(p.exists() for p in old), 10, "the periodic sweep")
    assert young.exists()  # inside the grace period
    assert set(blob_files(after.data_dir)) == {*kept, young}

    response = after.client.delete(f"/jobs/{again['id']}")
    assert response.status_code == 204
    after.client.delete(f"/jobs/{done['id']}")
    assert after.client.delete(f"/models/{model['id']}").status_code == 204
    model_shas = {f["sha256"] for f in model["files"]}
    assert not any(p.parent.name + p.name in model_shas for p in blob_files(after.data_dir))
