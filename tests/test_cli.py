"""The `ovbench` command: usage, the seed's output lines, --json, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main

OVBENCH = str(Path(sys.executable).with_name("ovbench"))


def test_help_prints_usage_with_seed_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "-h"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "-m",
        "-i",
        "-api",
        "-d",
        "-niter",
        "-nireq",
        "-nthreads",
        "-b",
        "-pin",
        "-t",
        "-hint",
    ):
        assert f" {option} " in out or f"[{option} " in out or f"{option}," in out
    assert "usage: ovbench run" in out


def test_run_without_options_prints_usage_and_error_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: ovbench run" in err
    assert "error:" in err and "-m" in err


def test_no_command_prints_usage_and_error_exit_2() -> None:
    proc = subprocess.run([OVBENCH], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "usage: ovbench" in proc.stderr and "error:" in proc.stderr


def test_sync_run_prints_the_seed_lines(tiny_model: Path) -> None:
    proc = subprocess.run(
        [OVBENCH, "run", "-m", str(tiny_model), "-niter", "20"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert "[ INFO ] Start inference synchronously (20 iterations)" in lines
    latency = [line for line in lines if line.startswith("[BENCHMARK RESULT] Latency is ")]
    throughput = [line for line in lines if line.startswith("[BENCHMARK RESULT] Throughput is ")]
    assert len(latency) == 1 and latency[0].endswith(" msec")
    assert len(throughput) == 1 and throughput[0].endswith(" FPS")
    assert float(throughput[0].split()[-2]) > 0
    host = [line for line in lines if line.startswith("[ INFO ] Host CPU during the run:")]
    assert len(host) == 1 and "other processes" in host[0] and "CPUs" in host[0]


def test_async_run_prints_start_and_throughput(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-m", str(tiny_model), "-api", "async", "-niter", "8", "-nireq", "4"]) == 0
    out = capsys.readouterr().out
    assert "Start inference asynchronously (8 iterations, 4 inference requests in parallel)" in out
    assert "[BENCHMARK RESULT] Throughput is " in out
    assert "[BENCHMARK RESULT] Latency is" not in out


def test_json_prints_numbers_as_numbers(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-m", str(tiny_model), "-niter", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iterations"] == 5
    assert isinstance(result["throughput_fps"], float)
    assert isinstance(result["latency_ms"]["median"], float)
    assert result["latency_ms"]["median"] < 50  # milliseconds, not seconds or strings
    assert {"p90", "p95", "p99", "stdev", "mean", "min", "max"} <= set(result["latency_ms"])


def test_bad_model_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "m.xml"
    bad.write_text("<net")
    proc = subprocess.run(
        [OVBENCH, "run", "-m", str(bad), "-niter", "1"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "[ ERROR ]" in proc.stderr and "m.bin" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_make_models_writes_the_requested_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["make-models", str(tmp_path), "--only", "tiny_cnn"]) == 0
    assert (tmp_path / "tiny_cnn.xml").is_file() and (tmp_path / "tiny_cnn.bin").is_file()
    assert not (tmp_path / "resnet50.xml").exists()
    assert "tiny_cnn:" in capsys.readouterr().out
