"""run_benchmark's trust sections on the real CPU plugin with tiny generated models: repeats
and their aggregate, cancel across repeats, the outputs check, provenance, the host guard and
the steady state."""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.engine.integrity import HostGuardRules, StabilityRules
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkResult, BenchmarkSpec, Progress
from tests.factories import (
    gradient_rgb,
    rgb_array,
    write_gradient_image,
    write_identity_model,
    write_solid_image,
)

NO_GUARD = HostGuardRules(sample_s=0)
# Height 6, width 8: the gradient image's size, so the engine feeds its pixels unresized.
IMAGE_IDENTITY_SHAPE = (1, 3, 6, 8)


def _spec(model: Path, **kwargs: object) -> BenchmarkSpec:
    kwargs.setdefault("guard", NO_GUARD)
    return BenchmarkSpec(model_path=str(model), **kwargs)  # type: ignore[arg-type]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _content_sha256(files: dict[str, str]) -> str:
    """The documented rule, written out here: `name\\0sha256\\n` per file, in name order."""
    return hashlib.sha256(
        "".join(f"{name}\0{files[name]}\n" for name in sorted(files)).encode()
    ).hexdigest()


def _assert_top_level_is_run(result: BenchmarkResult, index: int) -> None:
    shown = result.runs[index]
    assert result.throughput_fps == shown.throughput_fps
    assert result.latency_ms == shown.latency_ms
    assert result.iterations == shown.iterations
    assert result.duration_ms == shown.duration_ms
    assert result.timeline == shown.timeline
    assert result.cpu_usage == shown.cpu_usage
    assert result.energy == shown.energy
    assert result.steady_state == shown.steady_state


# --- repeats --------------------------------------------------------------------------------


def test_three_repeats_compile_once_and_show_the_median_run(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Progress] = []
    caplog.set_level(logging.INFO, logger="app.engine.runner")
    result = run_benchmark(
        _spec(tiny_model, api="sync", duration_s=0.6, repeats=3), on_progress=seen.append
    )

    assert result.status == "completed"
    assert len(result.runs) == 3
    for run in result.runs:
        # Sync times every request: each run's timeline counts exactly its own iterations.
        assert run.iterations > 0
        assert sum(point.iterations for point in run.timeline) == run.iterations
        assert run.latency_ms is not None and run.latency_ms.min > 0
        assert run.duration_ms >= 600
        assert [p.second for p in run.timeline] == list(range(len(run.timeline)))
    fps = [run.throughput_fps for run in result.runs]
    assert result.aggregate is not None
    assert result.aggregate.repeats == 3
    assert fps[result.aggregate.median_run] == sorted(fps)[1]
    assert result.aggregate.throughput_fps.median == statistics.median(fps)
    assert (result.aggregate.throughput_fps.min, result.aggregate.throughput_fps.max) == (
        min(fps),
        max(fps),
    )
    _assert_top_level_is_run(result, result.aggregate.median_run)
    assert result.stability is not None

    # One read, one compile, one warm-up inference for the three runs.
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("Compile model took") for m in messages) == 1
    assert sum(m.startswith("Read model took") for m in messages) == 1
    assert sum(m.startswith("First inference took") for m in messages) == 1
    assert result.compile_ms > 0

    # Progress is the job's: monotonic across the runs, ending at 1.0 with every run counted.
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert [p.iterations for p in seen] == sorted(p.iterations for p in seen)
    assert seen[-1].iterations == sum(run.iterations for run in result.runs)
    assert [p.elapsed_s for p in seen] == sorted(p.elapsed_s for p in seen)
    # Each run reports within its own third of the job.
    for k in range(3):
        assert any(k / 3 < f <= (k + 1) / 3 for f in fractions), (k, fractions)


def test_async_repeats_each_run_their_own_niter(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, api="async", niter=20, nireq=2, repeats=2))
    assert [run.iterations for run in result.runs] == [20, 20]
    assert result.aggregate is not None and result.aggregate.repeats == 2
    _assert_top_level_is_run(result, result.aggregate.median_run)


def test_one_run_is_the_top_level_without_an_aggregate(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, niter=30))
    assert len(result.runs) == 1
    _assert_top_level_is_run(result, 0)
    assert result.iterations == 30
    assert result.aggregate is None
    assert result.stability is not None
    assert result.stability.verdict in ("stable", "noisy", "drifting", "too_short")
    assert result.stability.rules == StabilityRules()


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_during_the_first_run_stops_the_repeats(tiny_model: Path) -> None:
    cancel = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.iterations > 0:
            cancel.set()

    began = time.perf_counter()
    result = run_benchmark(
        _spec(tiny_model, duration_s=2, repeats=5), on_progress=on_progress, cancel=cancel
    )
    assert result.status == "cancelled"
    assert 1 <= len(result.runs) < 5
    assert time.perf_counter() - began < 5  # not 5 runs of 2 s


def test_cancel_between_runs_is_a_cancelled_result(tiny_model: Path) -> None:
    """Cancel set by the first run's last progress report (fraction 1/5): the other four runs
    never start, so the job did not complete."""
    cancel = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.fraction >= 1 / 5:
            cancel.set()

    result = run_benchmark(
        _spec(tiny_model, duration_s=0.6, repeats=5), on_progress=on_progress, cancel=cancel
    )
    assert len(result.runs) < 5
    assert result.status == "cancelled", (
        f"{len(result.runs)} of 5 runs ran, yet the status is {result.status}"
    )


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_of_a_real_run_are_recorded(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, niter=5))
    assert result.outputs is not None
    (logits,) = result.outputs.outputs
    assert logits.name == "logits"
    assert logits.shape == [1, 10]
    assert logits.element_type == "f32"
    assert logits.nan_count == 0 and logits.inf_count == 0
    assert logits.min is not None and logits.max is not None and logits.mean is not None
    assert logits.min <= logits.mean <= logits.max
    assert logits.top5 is not None and len(logits.top5[0]) == 5
    assert set(logits.top5[0]) <= set(range(10))
    assert len(logits.sha256) == 64
    assert result.outputs.compared == []
    assert result.outputs.outputs_match is None


def _image_identity_dataset(directory: Path, expected: np.ndarray) -> Path:
    directory.mkdir(parents=True)
    write_gradient_image(directory / "gradient.png", width=8, height=6)
    np.save(directory / "expected_output.npy", expected)
    return directory


def _fed_gradient() -> np.ndarray:
    """What the engine feeds an NCHW image input from gradient.png: BGR, planar, f32."""
    rgb = rgb_array(8, 6, gradient_rgb(8, 6))
    return rgb[..., ::-1].transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def test_expected_outputs_from_an_images_folder_match(tmp_path: Path) -> None:
    model = write_identity_model(tmp_path / "model", IMAGE_IDENTITY_SHAPE)
    dataset = _image_identity_dataset(tmp_path / "data", _fed_gradient())
    result = run_benchmark(_spec(model, input_paths=[str(dataset)], niter=3, infer_precision="f32"))
    assert result.inputs[0].source == "images"
    assert result.inputs[0].files == ["gradient.png"]  # expected_output.npy is not an input
    assert result.outputs is not None
    (compared,) = result.outputs.compared
    assert compared.name == "output" and compared.expected_file == "expected_output.npy"
    assert compared.match and compared.max_abs_error == 0.0
    assert result.outputs.outputs_match is True
    assert not any("does not match" in w for w in result.warnings)


def test_perturbed_expected_outputs_do_not_match_and_warn(tmp_path: Path) -> None:
    model = write_identity_model(tmp_path / "model", IMAGE_IDENTITY_SHAPE)
    expected = _fed_gradient()
    expected[0, 1, 2, 3] += 10.0
    dataset = _image_identity_dataset(tmp_path / "data", expected)
    result = run_benchmark(_spec(model, input_paths=[str(dataset)], niter=3, infer_precision="f32"))
    assert result.outputs is not None
    assert result.outputs.outputs_match is False
    (compared,) = result.outputs.compared
    assert not compared.match
    assert compared.mismatched_elements == 1
    assert compared.max_abs_error == pytest.approx(10.0)
    assert any(
        "Output 'output' does not match 'expected_output.npy'" in w and "[0, 1, 2, 3]" in w
        for w in result.warnings
    )


# --- provenance -------------------------------------------------------------------------------


def test_provenance_hashes_the_model_and_records_the_resolved_options(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, api="async", niter=7, nireq=2))
    origin = result.provenance
    assert origin is not None
    files = {path.name: _sha256(path) for path in (tiny_model, tiny_model.with_suffix(".bin"))}
    assert origin.model_files == files
    assert origin.model_sha256 == _content_sha256(files)
    assert origin.dataset_sha256 is None and origin.input_files == {}
    # As resolved: niter aligned up to a multiple of nireq, no duration.
    assert origin.spec["niter"] == 8
    assert origin.spec["nireq"] == 2
    assert origin.spec["duration_s"] is None
    assert origin.spec["api"] == "async"
    assert origin.spec["model_path"] == str(tiny_model)
    assert "shown_names" not in origin.spec and "option_names" not in origin.spec
    assert origin.openvino_version == result.openvino_version
    assert origin.ovbench_version == result.ovbench_version
    assert origin.host.cpu_model.strip()
    assert origin.host.logical_cpus == os.cpu_count()
    assert result.config.cpus == sorted(os.sched_getaffinity(0))


def test_provenance_resolves_the_default_duration(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, default_duration_s={"CPU": 0.3, "UNKNOWN": 1}))
    assert result.provenance is not None
    assert result.provenance.spec["duration_s"] == 0.3
    assert result.provenance.spec["niter"] is None
    assert result.provenance.spec["nireq"] == 1


def test_dataset_sha256_covers_the_input_files_and_follows_their_content(
    tiny_model: Path, images_dir: Path
) -> None:
    first = run_benchmark(_spec(tiny_model, input_paths=[str(images_dir)], niter=2))
    assert first.provenance is not None
    files = {path.name: _sha256(path) for path in images_dir.iterdir()}
    assert first.provenance.input_files == files
    assert first.provenance.dataset_sha256 == _content_sha256(files)

    write_solid_image(images_dir / "grey.png", (127, 128, 128))  # one pixel value changes
    second = run_benchmark(_spec(tiny_model, input_paths=[str(images_dir)], niter=2))
    assert second.provenance is not None
    assert second.provenance.dataset_sha256 not in (None, first.provenance.dataset_sha256)
    assert second.provenance.input_files["grey.png"] != files["grey.png"]
    assert second.provenance.model_sha256 == first.provenance.model_sha256


# --- host guard -------------------------------------------------------------------------------


def test_the_host_guard_samples_before_the_run_and_records_the_frequency(
    tiny_model: Path,
) -> None:
    rules = HostGuardRules(sample_s=0.2, wait_s=0)
    result = run_benchmark(_spec(tiny_model, duration_s=1, guard=rules))
    guard = result.host_guard
    assert guard is not None
    assert guard.rules == rules
    assert guard.sampled_s >= 0.2
    assert guard.other_fraction is not None and 0 <= guard.other_fraction <= 1
    assert guard.waited_s == 0
    frequency = guard.frequency_mhz
    if frequency.available:
        assert frequency.source and frequency.per_second
        assert all(mhz > 0 for mhz in frequency.per_second)
        # Read at the start and once a second: too few readings in 1 s to judge throttling.
        enough = len(frequency.per_second) > StabilityRules().min_steady_s
        assert (guard.throttled is not None) == enough
    else:
        assert frequency.reason and guard.throttled is None
    temperature = guard.temperature_c
    assert temperature.per_second if temperature.available else temperature.reason


def test_no_guard_samples_nothing(tiny_model: Path) -> None:
    result = run_benchmark(_spec(tiny_model, niter=5))
    assert result.host_guard is not None
    assert result.host_guard.sampled_s == 0 and result.host_guard.other_fraction is None


# --- steady state -----------------------------------------------------------------------------


def test_a_four_second_run_reaches_a_steady_state_consistent_with_its_timeline(
    tiny_model: Path,
) -> None:
    # A wide band: the tiny model settles at once, and this shared host's noise (a few % a
    # second) cannot keep two seconds in a row out of ±50%.
    rules = StabilityRules(steady_band=0.5)
    result = run_benchmark(_spec(tiny_model, duration_s=4, stability=rules))
    steady = result.steady_state
    assert steady is not None
    assert steady == result.runs[0].steady_state
    assert "±50%" in steady.rule
    assert steady.reached, [p.throughput_fps for p in result.timeline]
    assert steady.warning is None
    assert steady.warmup_s is not None and steady.throughput_fps is not None
    duration_s = result.duration_ms / 1000
    assert steady.seconds >= rules.min_steady_s
    assert steady.warmup_s + steady.seconds <= duration_s + 0.5  # a last bucket of 0.5 s counts
    after = [p for p in result.timeline if p.second >= steady.warmup_s][: steady.seconds]
    fps = [p.throughput_fps for p in after]
    assert min(fps) <= steady.throughput_fps <= max(fps)
    latencies = [p.median_latency_ms for p in after if p.median_latency_ms is not None]
    assert steady.latency_median_ms is not None
    assert min(latencies) <= steady.latency_median_ms <= max(latencies)
    assert steady.cv is not None and steady.cv >= 0
    assert steady.trend is not None
