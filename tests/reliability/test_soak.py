"""Guarantee 9: 300 short jobs leave the worker's memory, file handles and temp files flat."""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import openvino as ov
import pytest

from app.settings import Settings
from app.store import Store
from app.worker.worker import Worker
from tests.e2e.conftest import Server
from tests.reliability.conftest import staging_files

JOBS = 300
RSS_SLACK_MIB = 64
FD_SLACK = 4


def _soak_module() -> ModuleType:
    """bench/soak.py: the same driver the lead runs to quote the curve."""
    path = Path(__file__).parents[2] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("ovbench_bench_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    return _soak_module()


def test_300_jobs_keep_worker_rss_fds_and_temp_files_flat(
    make_server: Callable[..., Server], tmp_path: Path, soak: ModuleType
) -> None:
    server = make_server(env={"OVBENCH_WORKER_POLL_INTERVAL_S": "0.02"})
    model_ids = []
    for xml in soak.write_soak_models(tmp_path / "models"):
        response = server.upload_model(xml)
        assert response.status_code == 201, response.text
        model_ids.append(response.json()["id"])
    pid = server.worker_pid()
    curve, statuses = soak.run_soak(server.client, model_ids, pid, total=JOBS, timeout_s=240)

    print("\nworker RSS curve (jobs -> MiB, fds):")
    for point in curve:
        print(f"  {point['jobs']:>4} -> {point['rss_mib']:7.1f} MiB  {point['fds']} fds")
    assert server.worker_pid() == pid  # one worker throughout: the curve is one process
    assert sum(statuses.values()) == JOBS
    assert statuses["succeeded"] > 0 and statuses["failed"] > 0 and statuses["cancelled"] > 0
    baseline = curve[0]
    assert baseline["jobs"] == 10
    for point in curve:
        assert point["rss_mib"] <= baseline["rss_mib"] + RSS_SLACK_MIB, curve
        assert point["fds"] <= baseline["fds"] + FD_SLACK, curve
    assert staging_files(server.data_dir) == []
    assert len(list((server.data_dir / "models").iterdir())) == len(model_ids)
    failed = server.client.get("/jobs", params={"status": "failed", "limit": 1000}).json()
    assert {job["error"]["code"] for job in failed} <= {"invalid_input", "reshape_failed"}, {
        job["error"]["code"] for job in failed
    }


def test_compiled_models_are_released_when_each_job_ends(
    tmp_path: Path, soak: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.ingest import ingest_model

    settings = Settings(data_dir=tmp_path / "data", run_lock_path=tmp_path / "run.lock")
    store = Store(settings.data_dir)
    store.migrate()
    model_ids = []
    for xml in soak.write_soak_models(tmp_path / "models"):
        staged = []
        for path in (xml, xml.with_suffix(".bin")):
            part = store.blobs.stage(1 << 30, filename=path.name)
            part.write(path.read_bytes())
            part.finish()
            staged.append(part)
        model_ids.append(ingest_model(store, staged, None)[0].id)  # type: ignore[arg-type]

    compiled: list[weakref.ref[Any]] = []
    original = ov.Core.compile_model

    def spy(self: ov.Core, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        compiled.append(weakref.ref(result))
        return result

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    worker = Worker(settings, store)
    for i in range(12):  # sync, async, a failing shape, a cancelled run
        store.jobs.create(soak.job_body(i, model_ids), max_queue=100)
        job = store.jobs.claim_next(worker.pid)
        assert job is not None
        if i % 10 == 3:
            store.jobs.request_cancel(job.id)
        worker.run_job(job)
        assert store.jobs.get(job.id).status in ("succeeded", "failed", "cancelled")
        alive = [ref for ref in compiled if ref() is not None]
        assert alive == [], f"job {i}: a compiled model outlived its job"
    assert len(compiled) >= 10  # the spy saw the compiles: the check above means something
    worker.run_lock.close()
    store.close()
