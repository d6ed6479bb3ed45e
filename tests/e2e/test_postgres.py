"""The real `ovbench serve` with OVBENCH_DATABASE_URL on the session's real PostgreSQL: a
tiny-CNN job runs to `succeeded` and every row is in PostgreSQL, none in a SQLite file; a
second serve on the same database refuses to start."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.e2e.conftest import OVBENCH, RUN_LOCK_ENV, Server, free_port


def test_serve_on_postgresql_runs_a_job_and_keeps_its_rows_there(
    make_server: Callable[..., Server], e2e_files: tuple[Path, Path], postgres_url: str
) -> None:
    model_xml, images = e2e_files
    server = make_server(env={"OVBENCH_DATABASE_URL": postgres_url})
    model = server.upload_model(model_xml)
    assert model.status_code == 201, model.text
    dataset = server.upload_images(images)
    assert dataset.status_code == 201, dataset.text
    job = server.submit(model_id=model.json()["id"], dataset_id=dataset.json()["id"], niter=20)
    # Polled through the API: off SQLite nothing is cached, so every state shows up.
    done = server.wait_job(job["id"], timeout_s=60)
    assert done["status"] == "succeeded", done
    assert done["result"]["iterations"] == 20 and done["result"]["throughput_fps"] > 0
    listed = server.client.get("/jobs")
    assert listed.status_code == 200 and "etag" not in listed.headers  # not from the cache
    assert [j["id"] for j in listed.json()] == [job["id"]]
    worker_pid = server.worker_pid()

    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, result::text, worker_pid, model_id FROM jobs WHERE id = :id"),
            {"id": job["id"]},
        ).one()
        models = conn.execute(text("SELECT id FROM models")).scalars().all()
        devices = conn.execute(text("SELECT name FROM devices")).scalars().all()
        slot = conn.execute(text("SELECT pid FROM workers")).scalars().all()
    engine.dispose()
    assert row.status == "succeeded" and '"throughput_fps"' in row.result
    assert row.worker_pid == worker_pid and models == [row.model_id]
    assert "CPU" in devices and slot == [worker_pid]
    assert not (server.data_dir / "ovbench.db").exists()
    assert not list(server.data_dir.rglob("*.db*"))
    # The worker got the URL in its environment, not on its command line (`ps` shows that).
    cmdline = Path(f"/proc/{worker_pid}/cmdline").read_bytes()
    assert b"--settings-json" in cmdline and b"postgresql+psycopg://" not in cmdline
    environ = Path(f"/proc/{worker_pid}/environ").read_bytes().split(b"\0")
    assert f"OVBENCH_DATABASE_URL={postgres_url}".encode() in environ


def test_a_second_serve_on_the_same_database_refuses_and_leaves_the_first_alone(
    make_server: Callable[..., Server],
    e2e_files: tuple[Path, Path],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """Its start-up would mark the first one's running job `interrupted`: it must not start."""
    server = make_server(env={"OVBENCH_DATABASE_URL": postgres_url})
    running = server.start_long_job(e2e_files[0])
    worker_pid = server.worker_pid()
    second = subprocess.run(
        [str(OVBENCH), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "OVBENCH_DATABASE_URL": postgres_url,
            RUN_LOCK_ENV: str(tmp_path / "b.run.lock"),
        },
    )
    assert second.returncode == 1, second.stderr
    assert "another ovbench serve is using the database" in second.stderr
    assert server.job(running["id"])["status"] == "running"
    assert server.worker_pid() == worker_pid
