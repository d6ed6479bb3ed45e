"""`ovbench run` names options by their flags, and its advice can be followed as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main, print_report
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkSpec, CpuUsage
from tests.engine.model_builders import write_sequence_state_model, write_vector_model


def _flag_value(text: str, flag: str) -> str:
    found = re.search(rf"(?<![\w-]){re.escape(flag)} (\S+?)[.,;)]?(?=\s|$)", text)
    assert found is not None, f"no {flag} in: {text}"
    return found.group(1)


def test_dynamic_shape_error_prints_flags_that_work_when_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = str(write_sequence_state_model(tmp_path))
    assert main(["run", "-m", xml, "-niter", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("[ ERROR ] Inputs 'input' [?,?] and 'state' [2,?,128]")
    assert "-shape input[1,512],state[2,1,128]" in err
    assert "-data_shape input[1,512],state[2,1,128]" in err
    assert '"shape"' not in err
    assert main(["run", "-m", xml, "-niter", "2", "-shape", _flag_value(err, "-shape")]) == 0
    out = capsys.readouterr().out
    assert "[BENCHMARK RESULT] Throughput is " in out


def test_batch_error_prints_a_layout_flag_that_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = str(write_vector_model(tmp_path))
    assert main(["run", "-m", xml, "-niter", "2", "-b", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("[ ERROR ] -b was given") and "-layout input[NC]" in err
    layout = _flag_value(err, "-layout")
    assert main(["run", "-m", xml, "-niter", "2", "-b", "3", "-layout", layout]) == 0
    assert "batch 3" in capsys.readouterr().out


def test_warnings_name_flags(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", str(tiny_model), "-niter", "2", "-nthreads", "1"]) == 0
    out = capsys.readouterr().out
    assert "[ WARNING ] -nthreads given without -hint" in out


def test_a_very_short_run_prints_host_cpu_as_not_measured(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-m", str(tiny_model), "-niter", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    host = [line for line in lines if line.startswith("[ INFO ] Host CPU during the run:")]
    assert len(host) == 1
    assert host[0].startswith("[ INFO ] Host CPU during the run: not measured (")
    assert "None" not in host[0] and "%" not in host[0]
    assert not any("Other processes used" in line for line in lines)


def test_a_measured_run_prints_the_shares(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_benchmark(BenchmarkSpec(model_path=str(tiny_model), niter=2))
    measured = CpuUsage(
        logical_cpus=4,
        wall_s=2.0,
        benchmark_cpu_s=1.5,
        other_cpu_s=0.4,
        steal_s=0.08,
        other_fraction=0.05,
        steal_fraction=0.01,
    )
    print_report(result.model_copy(update={"cpu_usage": measured}))
    out = capsys.readouterr().out
    assert (
        "[ INFO ] Host CPU during the run: benchmark 1.50 CPU-s, other processes 5.0%, "
        "steal 1.0% of 4 CPUs"
    ) in out
