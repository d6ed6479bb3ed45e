"""The worker loop with the real engine on the tiny model, in burst mode (in-process)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.engine.errors import ModelReadError
from app.engine.integrity import HostGuardRules
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkResult
from app.settings import Settings
from app.store import Store
from app.store.tables import DatasetRow, ModelRow
from app.worker.supervisor import wall_time_budget_s
from app.worker.worker import Worker, build_spec


def params(model: ModelRow, **extra: object) -> dict[str, object]:
    return {"model_id": model.id, "device": "CPU", "api": "sync", "niter": 20, **extra}


def wait_for(predicate: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_burst_runs_queued_jobs_in_order_and_stores_the_engine_result(
    worker: Worker, store: Store, model: ModelRow, dataset: DatasetRow
) -> None:
    sync_job = store.jobs.create(params(model, dataset_id=dataset.id), max_queue=10)
    async_job = store.jobs.create(params(model, api="async", nireq=2, niter=40), max_queue=10)
    assert worker.run(burst=True) == 2
    done = store.jobs.get(sync_job.id)
    assert done.status == "succeeded", done.error_message
    result = BenchmarkResult.model_validate(done.result)
    assert result.model_dump(mode="json") == done.result  # exactly the engine's JSON
    assert result.iterations == 20 and result.throughput_fps > 0 and result.latency_ms is not None
    assert result.inputs[0].source == "images"
    assert set(result.inputs[0].files) <= {f["name"] for f in dataset.files}
    assert (
        done.started_at is not None
        and done.finished_at is not None
        and done.started_at <= done.finished_at
    )
    other = store.jobs.get(async_job.id)
    assert (
        other.status == "succeeded" and other.result is not None and other.result["api"] == "async"
    )
    assert other.started_at >= done.finished_at  # type: ignore[operator]  # one at a time
    assert [d.name for d in store.workers.list_devices()] == ["CPU"]
    assert store.workers.read() is not None


def test_a_bad_job_fails_with_the_engine_message_and_the_next_runs(
    worker: Worker, store: Store, model: ModelRow
) -> None:
    bad = store.jobs.create(params(model, shape="[1,3,abc]"), max_queue=10)
    wrong_device = store.jobs.create(params(model, device="NPU"), max_queue=10)
    good = store.jobs.create(params(model), max_queue=10)
    assert worker.run(burst=True) == 3
    failed = store.jobs.get(bad.id)
    assert failed.status == "failed" and failed.error_code in ("invalid_input", "invalid_config")
    assert failed.error_message and "shape" in failed.error_message.lower()
    no_device = store.jobs.get(wrong_device.id)
    assert (no_device.status, no_device.error_code) == ("failed", "device_not_found")
    assert store.jobs.get(good.id).status == "succeeded"


def test_a_deleted_model_fails_the_job_instead_of_the_worker(
    worker: Worker, store: Store, model: ModelRow
) -> None:
    job = store.jobs.create(params(model), max_queue=10)
    store.blobs.remove_dir(store.blobs.model_dir(model.id))
    with store.session() as s:  # the row vanishes behind the API's back
        s.delete(s.get(ModelRow, model.id))
        s.commit()
    worker.run(burst=True)
    failed = store.jobs.get(job.id)
    assert (failed.status, failed.error_code) == ("failed", "model_not_found")


def test_cancel_request_stops_a_running_job_within_2_s_and_progress_is_written(
    worker: Worker, store: Store, model: ModelRow
) -> None:
    job = store.jobs.create(params(model, niter=None, duration_s=30), max_queue=10)
    thread = threading.Thread(target=worker.run, kwargs={"burst": True})
    thread.start()
    try:
        wait_for(lambda: store.jobs.get(job.id).progress_iterations > 0, 20)
        first = store.jobs.get(job.id)
        assert first.status == "running" and 0 < first.progress_fraction < 1
        wait_for(lambda: store.jobs.get(job.id).progress_elapsed_s > first.progress_elapsed_s, 3)
        store.jobs.request_cancel(job.id)
        asked = time.monotonic()
        wait_for(lambda: store.jobs.get(job.id).status != "running", 5)
        assert time.monotonic() - asked < 2.0
    finally:
        worker.stop_event.set()
        thread.join(timeout=10)
    cancelled = store.jobs.get(job.id)
    assert (cancelled.status, cancelled.error_code) == ("cancelled", "cancelled")
    assert cancelled.result is not None and cancelled.result["status"] == "cancelled"


def test_stopping_the_worker_records_the_running_job_as_cancelled(
    worker: Worker, store: Store, model: ModelRow
) -> None:
    job = store.jobs.create(params(model, niter=None, duration_s=30), max_queue=10)
    queued = store.jobs.create(params(model), max_queue=10)
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_for(lambda: store.jobs.get(job.id).progress_iterations > 0, 20)
    worker.stop_event.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    stopped = store.jobs.get(job.id)
    assert stopped.status == "cancelled" and "shut down" in (stopped.error_message or "")
    assert store.jobs.get(queued.id).status == "queued"  # left for the next start


def test_the_spec_names_options_as_json_fields_and_keeps_the_params(
    store: Store, model: ModelRow, settings: Settings
) -> None:
    job = store.jobs.create(params(model, nstreams="2", shape="[1,3,32,32]"), max_queue=10)
    spec = build_spec(store, job, settings)
    assert spec.option_names == "api"  # engine messages say `shape`, not `-shape`
    assert (spec.device, spec.api, spec.niter, spec.nstreams, spec.shape) == (
        "CPU",
        "sync",
        20,
        "2",
        "[1,3,32,32]",
    )
    assert spec.default_duration_s == settings.default_duration_s


def test_wall_time_budget_defaults_to_the_cpu_duration_like_the_engine(
    settings: Settings,
) -> None:
    """A job without device runs on CPU (BenchmarkSpec's default), so it gets CPU's time."""
    table = {"CPU": 7.0, "GPU": 9.0, "UNKNOWN": 100.0}
    timed = settings.model_copy(
        update={"default_duration_s": table, "guard": HostGuardRules(sample_s=0)}
    )
    assert wall_time_budget_s({}, timed) == 7.0 + timed.job_allowance_s
    assert wall_time_budget_s({"device": "HETERO:GPU,CPU"}, timed) == 9.0 + timed.job_allowance_s
    assert wall_time_budget_s({"device": "FPGA"}, timed) == 100.0 + timed.job_allowance_s


def test_wall_time_budget_counts_every_repeat_and_the_host_guards_wait(
    settings: Settings,
) -> None:
    guarded = settings.model_copy(update={"guard": HostGuardRules(sample_s=1.0, wait_s=10.0)})
    params = {"duration_s": 5.0, "repeats": 4}
    assert wall_time_budget_s(params, guarded) == 5.0 * 4 + 1.0 + 10.0 + guarded.job_allowance_s


def test_engine_messages_name_the_uploaded_files_not_the_stored_ones(
    store: Store, model: ModelRow, settings: Settings, tiny_model: Path
) -> None:
    job = store.jobs.create(params(model), max_queue=10)
    spec = build_spec(store, job, settings)
    stored = Path(spec.model_path)
    assert stored.name == "model.xml"
    assert spec.shown_names == {"model.xml": tiny_model.name, "model.bin": f"{tiny_model.stem}.bin"}
    stored.with_suffix(".bin").unlink()  # the weights vanish from under a queued job
    with pytest.raises(ModelReadError) as caught:
        run_benchmark(spec)
    assert f"'{tiny_model.stem}.bin'" in caught.value.message
    assert "model.bin" not in caught.value.message
