"""Messages name run options as the caller wrote them: CLI flags (`-shape`) or API fields (`shape`).

Each case runs the same spec twice, with option_names "cli" and "api", and checks the
message (or warning) names the option the caller's way and never the other way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.api.schemas import JobCreate
from app.cli import _run_parser
from app.engine.errors import EngineError
from app.engine.runner import idle_streams_warning, run_benchmark
from app.engine.spec import OPTION_NAMES, BenchmarkSpec, option_example, option_name
from tests.engine.model_builders import write_sequence_state_model, write_vector_model
from tests.factories import write_two_input_model

# Any benchmark_app flag, as a word of its own (not the "-1" of a shape, not "re-read").
CLI_FLAG = re.compile(
    r"(?<![\w-])-(shape|data_shape|layout|b|niter|t|nireq|nstreams|nthreads|pin|hint|"
    r"infer_precision|i|l|c|d|api|pc)(?![\w-])"
)


def test_every_option_has_a_cli_flag_and_an_api_field() -> None:
    flags = {s for action in _run_parser("ovbench run")._actions for s in action.option_strings}
    for option, (flag, field) in OPTION_NAMES.items():
        assert flag in flags, option
        assert field in JobCreate.model_fields, option
        assert option_name(option, "cli") == flag and option_name(option, "api") == field
    assert (
        option_name("duration_s", "cli") == "-t"
        and option_name("duration_s", "api") == "duration_s"
    )
    assert option_name("batch", "cli") == "-b" and option_name("batch", "api") == "batch"
    assert option_name("input_paths", "api") == "dataset_id"
    assert option_example("nireq", 4, "cli") == "-nireq 4"
    assert option_example("nireq", 4, "api") == '"nireq": 4'
    assert option_example("shape", "x[1,2]", "api") == '"shape": "x[1,2]"'


def _error(spec: BenchmarkSpec) -> str:
    with pytest.raises(EngineError) as err:
        run_benchmark(spec)
    return err.value.message


def _both(model: Path, **kwargs: object) -> tuple[BenchmarkSpec, BenchmarkSpec]:
    return (
        BenchmarkSpec(model_path=str(model), option_names="cli", **kwargs),  # type: ignore[arg-type]
        BenchmarkSpec(model_path=str(model), option_names="api", **kwargs),  # type: ignore[arg-type]
    )


def _assert_api_style(text: str) -> None:
    assert CLI_FLAG.search(text) is None, f"a CLI flag in an API message: {text}"


def test_dynamic_shape_error(tmp_path: Path) -> None:
    cli, api = _both(write_sequence_state_model(tmp_path), niter=2)
    cli_message, api_message = _error(cli), _error(api)
    assert "-shape input[1,512],state[2,1,128]" in cli_message
    assert "-data_shape input[1,512],state[2,1,128]" in cli_message
    assert '"shape": "input[1,512],state[2,1,128]"' in api_message
    assert '"data_shape": "input[1,512],state[2,1,128]"' in api_message
    assert "-b " in cli_message and "batch" in api_message
    _assert_api_style(api_message)


def test_shape_that_does_not_parse(tiny_model: Path) -> None:
    cli, api = _both(tiny_model, niter=1, shape="[1,three,64,64]")
    cli_message, api_message = _error(cli), _error(api)
    assert cli_message.startswith("-shape for input 'input'")
    assert api_message.startswith("shape for input 'input'")
    _assert_api_style(api_message)
    cli, api = _both(tiny_model, niter=1, data_shape="nosuch[1,3,64,64]")
    assert "-data_shape names input 'nosuch'" in _error(cli)
    api_message = _error(api)
    assert "data_shape names input 'nosuch'" in api_message
    _assert_api_style(api_message)


def test_batch_without_a_batch_dimension(tmp_path: Path) -> None:
    cli, api = _both(write_vector_model(tmp_path), niter=1, batch=1)
    cli_message, api_message = _error(cli), _error(api)
    assert cli_message.startswith("-b was given") and "-layout input[NC]" in cli_message
    assert api_message.startswith("batch was given")
    assert '"layout": "input[NC]"' in api_message
    _assert_api_style(api_message)


def test_streams_that_are_not_a_number(tiny_model: Path) -> None:
    cli, api = _both(tiny_model, niter=1, nstreams="two")
    cli_message, api_message = _error(cli), _error(api)
    assert "-nstreams 'two'" in cli_message and "-nstreams 2" in cli_message
    assert "nstreams 'two'" in api_message and '"nstreams": "2"' in api_message
    _assert_api_style(api_message)


def test_warnings_of_a_run(tmp_path: Path) -> None:
    """Tuning without a hint, no run length, random data for an image and a non-image input."""
    xml = write_two_input_model(tmp_path)
    cli, api = _both(
        xml,
        api="async",
        nstreams="1",
        nthreads=1,
        default_duration_s={"CPU": 0.2, "UNKNOWN": 0.2},
    )
    cli_warnings = run_benchmark(cli).warnings
    api_warnings = run_benchmark(api).warnings
    cli_text, api_text = "\n".join(cli_warnings), "\n".join(api_warnings)
    assert len(cli_warnings) == len(api_warnings) >= 4
    assert "-nstreams, -nthreads given without -hint" in cli_text
    assert "(-hint none)" in cli_text
    assert "nstreams, nthreads given without hint" in api_text
    assert '("hint": "none")' in api_text
    assert "Neither -niter nor -t given" in cli_text
    assert "Neither niter nor duration_s given" in api_text
    assert "'scale.npy' of shape [1, 4] among the inputs (-i)" in cli_text
    assert "'scale.npy' of shape [1, 4] among the inputs (dataset_id)" in api_text
    assert "Give images among the inputs (-i)" in cli_text
    assert "Give images among the inputs (dataset_id)" in api_text
    for warning in api_warnings:
        _assert_api_style(warning)


def test_legacy_pin_value_and_extension_library(tmp_path: Path, tiny_model: Path) -> None:
    cli, api = _both(tiny_model, niter=1, pin="NUMA", hint="latency")
    assert any(w.startswith("-pin NUMA is a legacy value") for w in run_benchmark(cli).warnings)
    api_warnings = run_benchmark(api).warnings
    assert any(w.startswith('"pin": "NUMA" is a legacy value') for w in api_warnings)
    for warning in api_warnings:
        _assert_api_style(warning)
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"not a library")
    cli, api = _both(tiny_model, niter=1, extension_paths=[str(fake)])
    assert f"Cannot load extension library '{fake}' (-l)" in _error(cli)
    api_message = _error(api)
    assert f"Cannot load extension library '{fake}' (extensions)" in api_message
    _assert_api_style(api_message)


def test_idle_streams_warning() -> None:
    assert "Use -nireq 4 or more" in idle_streams_warning(2, 4, "cli")
    api_warning = idle_streams_warning(2, 4, "api")
    assert 'Use "nireq": 4 or more' in api_warning
    _assert_api_style(api_warning)


def test_warnings_about_images(tmp_path: Path, tiny_model: Path, images_dir: Path) -> None:
    """More images than one request uses; images for a model without an image input."""
    cli, api = _both(tiny_model, niter=1, input_paths=[str(images_dir)])
    assert any("Raise -nireq or -b to use more" in w for w in run_benchmark(cli).warnings)
    api_warnings = run_benchmark(api).warnings
    assert any("Raise nireq or batch to use more" in w for w in api_warnings)
    cli, api = _both(
        write_vector_model(tmp_path), niter=1, shape="[1,576]", input_paths=[str(images_dir)]
    )
    assert any("e.g. -layout NCHW" in w for w in run_benchmark(cli).warnings)
    api_warnings += run_benchmark(api).warnings
    assert any('e.g. "layout": "NCHW"' in w for w in api_warnings)
    for warning in api_warnings:
        _assert_api_style(warning)


def test_streams_capped_by_the_requests_are_a_warning(tiny_model: Path) -> None:
    """-nstreams 2 -nireq 1: the CPU plugin runs 1 stream (PERFORMANCE_HINT_NUM_REQUESTS caps
    it), which a sweep over nstreams and nireq meets at once; the result says so."""
    cli, api = _both(tiny_model, niter=20, api="async", nstreams="2", nireq=1)
    result = run_benchmark(cli)
    assert result.config.nstreams == 1
    assert any(
        w.startswith("-nstreams 2 asked, but the device runs 1 stream") and "Use -nireq 2" in w
        for w in result.warnings
    ), result.warnings
    api_warnings = [w for w in run_benchmark(api).warnings if "asked, but the device" in w]
    assert api_warnings and '"nireq": 2 or more' in api_warnings[0]
    _assert_api_style(api_warnings[0])
    matched = run_benchmark(_both(tiny_model, niter=20, api="async", nstreams="2", nireq=2)[0])
    assert matched.config.nstreams == 2
    assert not any("asked, but the device" in w for w in matched.warnings)
