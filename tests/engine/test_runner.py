"""run_benchmark end to end on the real CPU plugin with tiny generated models."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.engine.errors import (
    ConfigError,
    DeviceNotFoundError,
    DynamicShapeError,
    InputError,
    ModelReadError,
)
from app.engine.integrity import HostGuardRules
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkSpec, Progress
from tests.factories import (
    write_broken_copies,
    write_dynamic_model,
    write_nhwc_model,
    write_onnx_model,
    write_two_input_model,
)


def _spec(model: Path, **kwargs: object) -> BenchmarkSpec:
    return BenchmarkSpec(model_path=str(model), **kwargs)  # type: ignore[arg-type]


def _assert_consistent(result) -> None:  # type: ignore[no-untyped-def]
    lat = result.latency_ms
    assert lat is not None
    assert 0 < lat.min <= lat.median <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    assert result.throughput_fps == pytest.approx(
        result.config.batch_size * result.iterations / (result.duration_ms / 1000), rel=1e-9
    )
    assert sum(p.iterations for p in result.timeline) <= result.iterations


def test_sync_runs_exactly_niter_iterations(tiny_model: Path, images_dir: Path) -> None:
    result = run_benchmark(_spec(tiny_model, input_paths=[str(images_dir)], api="sync", niter=37))
    assert result.status == "completed"
    assert result.iterations == 37
    assert result.config.nireq == 1
    assert result.config.hint == "latency"
    assert sum(p.iterations for p in result.timeline) == 37  # every sync latency is timed
    assert result.first_inference_ms > 0 and result.compile_ms > 0 and result.read_model_ms > 0
    assert result.inputs[0].source == "images"
    # one request, batch 1: only the first image (sorted by name) is fed, and the result says so
    assert result.inputs[0].files == [sorted(p.name for p in images_dir.iterdir())[0]]
    assert any("Only 1 of 5 images" in w for w in result.warnings)
    _assert_consistent(result)


def test_async_rounds_niter_up_to_a_multiple_of_nireq_with_a_warning(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, api="async", niter=7, nireq=2))
    assert result.iterations == 8
    assert any("aligned" in w and "from 7 to 8" in w for w in result.warnings)
    assert result.config.nireq == 2
    assert result.config.hint == "throughput"
    _assert_consistent(result)


def test_async_exact_multiple_is_not_rounded(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, api="async", niter=12, nireq=4))
    assert result.iterations == 12
    assert not any("aligned" in w for w in result.warnings)
    assert result.limits["nireq"] == 4


def test_duration_bounds_the_run_and_timeline_covers_it(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, api="async", duration_s=1.5))
    assert 1500 <= result.duration_ms < 4000
    assert len(result.timeline) >= 2
    assert [p.second for p in result.timeline] == list(range(len(result.timeline)))
    assert result.timeline[0].iterations > 0 and result.timeline[0].median_latency_ms is not None
    _assert_consistent(result)


def test_default_duration_from_device_table_when_no_limit(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, default_duration_s={"CPU": 1, "UNKNOWN": 2}))
    assert result.limits["duration_s"] == 1
    assert 1000 <= result.duration_ms < 3000
    assert any("device default of 1 s" in w for w in result.warnings)


def test_batch_reshapes_and_counts_frames(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, niter=10, batch=4))
    assert result.config.batch_size == 4
    assert result.inputs[0].shape == [4, 3, 64, 64]
    assert result.reshape_ms is not None
    assert result.config.requested.get("ALLOW_AUTO_BATCHING") == "False"
    _assert_consistent(result)


def test_two_inputs_two_outputs_with_npy_and_images(tmp_path: Path, images_dir: Path) -> None:
    xml = write_two_input_model(tmp_path / "m")
    np.save(tmp_path / "scale.npy", np.ones((1, 4), dtype=np.float32))
    result = run_benchmark(
        _spec(xml, input_paths=[str(images_dir), str(tmp_path / "scale.npy")], niter=5)
    )
    sources = {i.input: i.source for i in result.inputs}
    assert sources == {"image": "images", "scale": "npy"}
    assert [o.name for o in result.model.outputs] == ["out_a", "out_b"]
    assert not any("random" in w for w in result.warnings)


def test_nhwc_model_runs_with_images(tmp_path: Path, images_dir: Path) -> None:
    result = run_benchmark(
        _spec(write_nhwc_model(tmp_path), input_paths=[str(images_dir)], niter=4)
    )
    assert result.inputs[0].source == "images"
    assert result.inputs[0].shape == [1, 32, 32, 3]


def test_dynamic_shape_unresolved_is_a_clear_error(tmp_path: Path) -> None:
    xml = write_dynamic_model(tmp_path)
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml, niter=2))
    assert "'input'" in err.value.message and "-shape" in err.value.message
    assert "-data_shape" in err.value.message
    with pytest.raises(DynamicShapeError):
        run_benchmark(_spec(xml, niter=2, batch=1))  # H and W stay dynamic


def test_dynamic_shape_resolved_by_shape_or_data_shape(tmp_path: Path) -> None:
    xml = write_dynamic_model(tmp_path)
    reshaped = run_benchmark(_spec(xml, niter=4, shape="[2,3,16,16]"))
    assert reshaped.inputs[0].shape == [2, 3, 16, 16]
    assert reshaped.config.batch_size == 2
    kept_dynamic = run_benchmark(_spec(xml, niter=4, api="async", data_shape="input[1,3,20,24]"))
    assert kept_dynamic.inputs[0].shape == [1, 3, 20, 24]
    assert kept_dynamic.model.inputs[0].shape == "[?,3,?,?]"


def test_bad_shape_strings_name_the_problem(tiny_model: Path) -> None:
    with pytest.raises(InputError, match="not a shape"):
        run_benchmark(_spec(tiny_model, niter=1, shape="[1,three,64,64]"))
    with pytest.raises(InputError, match="does not have.*input"):
        run_benchmark(_spec(tiny_model, niter=1, shape="nosuch[1,3,64,64]"))


def test_onnx_model_runs(tmp_path: Path) -> None:
    result = run_benchmark(_spec(write_onnx_model(tmp_path), niter=6, api="async"))
    assert result.model.format == "onnx"
    assert result.iterations == 6


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing_bin", "'missing_bin.bin' not found"),
        ("truncated_bin", "'truncated_bin.xml'"),
        ("malformed_xml", "'malformed_xml.xml'"),
        ("empty_xml", "'empty_xml.xml' is empty"),
        ("garbage_onnx", "'garbage.onnx'"),
        ("unknown_ext", "unknown extension '.foo'"),
    ],
)
def test_bad_model_files_give_clear_errors(
    tiny_model: Path, tmp_path: Path, case: str, fragment: str
) -> None:
    broken = write_broken_copies(tiny_model, tmp_path)[case]
    with pytest.raises(ModelReadError) as err:
        run_benchmark(_spec(broken, niter=1))
    assert fragment in err.value.message
    assert "Traceback" not in err.value.message


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelReadError, match="'absent.onnx' not found"):
        run_benchmark(_spec(tmp_path / "absent.onnx", niter=1))


def test_unknown_device_lists_available_ones(tiny_model: Path) -> None:
    with pytest.raises(DeviceNotFoundError, match=r"'GPU' is not available.*Available: CPU"):
        run_benchmark(_spec(tiny_model, device="GPU", niter=1))
    with pytest.raises(DeviceNotFoundError, match="HETERO:NPU,CPU"):
        run_benchmark(_spec(tiny_model, device="HETERO:NPU,CPU", niter=1))


def test_nstreams_without_hint_applies_streams_and_says_so(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, api="async", niter=4, nstreams="1", nthreads=1))
    assert result.config.nstreams == 1
    assert result.config.nthreads == 1
    assert "PERFORMANCE_HINT" not in result.config.requested
    assert any("-hint none" in w for w in result.warnings)


def test_per_device_values_apply_this_devices_entry(tiny_model: Path) -> None:
    # The CPU's entry of the per-device form, not the last entry's.
    spec = _spec(
        tiny_model,
        api="async",
        niter=4,
        nstreams="CPU:1,GPU:3",
        infer_precision="CPU:f32,GPU:f16",
    )
    result = run_benchmark(spec)
    assert result.config.nstreams == 1
    assert result.config.inference_precision == "f32"


def test_per_device_values_without_this_device_say_what_to_add(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"no value for CPU.*-nstreams CPU:4"):
        run_benchmark(_spec(tiny_model, api="async", niter=4, nstreams="GPU:4"))


def test_perf_counters_are_reported_when_asked(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, niter=3, perf_counters=True))
    assert result.perf_counters
    assert any(c.real_time_ms > 0 for c in result.perf_counters)
    assert result.perf_counters_per_request is not None
    assert len(result.perf_counters_per_request) == 1  # sync: one request, its own average
    assert result.perf_counters_per_request[0] == result.perf_counters
    off = run_benchmark(_spec(tiny_model, niter=3))
    assert off.perf_counters is None and off.perf_counters_per_request is None


def test_perf_counters_keep_each_infer_request_and_their_average(tiny_model: Path) -> None:
    no_guard = HostGuardRules(sample_s=0)  # no wait for a quiet host: counters, not timings
    result = run_benchmark(
        _spec(tiny_model, api="async", niter=4, nireq=2, perf_counters=True, guard=no_guard)
    )
    average, per_request = result.perf_counters, result.perf_counters_per_request
    assert average and per_request is not None
    assert len(per_request) == result.config.nireq == 2
    names = [c.node_name for c in average]
    for counters in per_request:
        assert [c.node_name for c in counters] == names
        assert any(c.real_time_ms > 0 for c in counters)  # each request ran
    for index, counter in enumerate(average):
        own = [counters[index] for counters in per_request]
        assert (counter.node_type, counter.exec_type) == (own[0].node_type, own[0].exec_type)
        assert counter.real_time_ms == pytest.approx(sum(c.real_time_ms for c in own) / 2)
        assert counter.cpu_time_ms == pytest.approx(sum(c.cpu_time_ms for c in own) / 2)


def test_latency_percentile_is_reported(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, niter=50, latency_percentile=75))
    assert result.latency_ms is not None
    assert result.latency_ms.percentile == 75
    assert result.latency_ms.median <= result.latency_ms.at_percentile <= result.latency_ms.max


@pytest.mark.parametrize("api", ["sync", "async"])
def test_cancel_stops_within_a_second_and_says_cancelled(tiny_model: Path, api: str) -> None:
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(progress: Progress) -> None:
        if progress.iterations > 0 and not cancel.is_set():
            cancelled_at.append(time.perf_counter())
            cancel.set()

    result = run_benchmark(
        _spec(tiny_model, api=api, duration_s=60), on_progress=on_progress, cancel=cancel
    )
    stopped_after_s = time.perf_counter() - cancelled_at[0]
    assert result.status == "cancelled"
    assert stopped_after_s < 1.0
    assert result.duration_ms < 5000
    assert result.iterations > 0


def test_progress_is_reported_at_least_once_a_second(tiny_model: Path) -> None:
    seen: list[Progress] = []
    run_benchmark(_spec(tiny_model, api="async", duration_s=2), on_progress=seen.append)
    elapsed = [p.elapsed_s for p in seen]
    assert len(seen) >= 3
    assert max(b - a for a, b in zip([0.0, *elapsed], elapsed, strict=False)) < 1.0
    assert [p.iterations for p in seen] == sorted(p.iterations for p in seen)
    assert seen[-1].fraction == 1.0


def test_model_files_are_hashed_in_the_result(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.xml"
    shutil.copyfile(tiny_model, copy)
    shutil.copyfile(tiny_model.with_suffix(".bin"), copy.with_suffix(".bin"))
    a = run_benchmark(_spec(tiny_model, niter=1))
    b = run_benchmark(_spec(copy, niter=1))
    assert [f.sha256 for f in a.model.files] == [f.sha256 for f in b.model.files]
    assert [f.name for f in a.model.files] == ["tiny_cnn.xml", "tiny_cnn.bin"]
    assert a.openvino_version and a.device_full_name and a.host["logical_cpus"]
