"""The `ovbench` command: usage, the seed's output lines, --json, errors without tracebacks."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.cli import main
from tests.e2e.conftest import RUN_LOCK_ENV, Server, group_alive, own_run_lock, run_until_exit

OVBENCH = str(Path(sys.executable).with_name("ovbench"))
# oneDNN's avx512_core_bf16: what the CPU plugin checks (x86-64) to infer in bf16 by default.
NATIVE_BF16_FLAGS = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"})


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
    # 20 iterations of the tiny CNN take milliseconds: too short for /proc's 10 ms ticks.
    assert len(host) == 1 and "not measured" in host[0] and "logical CPUs" in host[0]


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
    out = capsys.readouterr().out
    assert "tiny_cnn:" in out
    # The README feeds these: they come with the models.
    for name in ("red.png", "grey.png", "gradient.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size == (224, 224)
        assert str(tmp_path / name) in out


def test_make_models_images_feed_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-models", str(tmp_path), "--only", "tiny_cnn"]) == 0
    model, red, grey = (str(tmp_path / name) for name in ("tiny_cnn.xml", "red.png", "grey.png"))
    capsys.readouterr()
    assert (
        main(["run", "-m", model, "-i", red, grey, "-api", "async", "-niter", "4", "--json"]) == 0
    )
    (used,) = json.loads(capsys.readouterr().out)["inputs"]
    assert (used["source"], sorted(used["files"])) == ("images", ["grey.png", "red.png"])


def _cpu_flags() -> frozenset[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not Path("/proc/cpuinfo").is_file(),
    reason="the rule and the flags are x86-64 Linux's",
)
def test_default_inference_precision_follows_the_cpu_isa(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: bf16 by default where the CPU has AVX512_BF16 (AMX CPUs too), f32 elsewhere."""
    flags = _cpu_flags()
    expected = "bf16" if NATIVE_BF16_FLAGS.issubset(flags) else "f32"
    assert main(["run", "-m", str(tiny_model), "-niter", "1", "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["inference_precision"] == expected, sorted(flags & NATIVE_BF16_FLAGS)
    # Asking for f32 is honoured everywhere, and reported.
    assert (
        main(["run", "-m", str(tiny_model), "-niter", "1", "-infer_precision", "f32", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["config"]["inference_precision"] == "f32"


# --- ovbench serve on a port that is taken ---------------------------------------------------


@contextlib.contextmanager
def _taken_port(by: str, tmp_path: Path) -> Iterator[int]:
    """A port of 127.0.0.1 that something listens on: a real `ovbench serve`, or a bare socket."""
    if by == "serve":
        server = Server(tmp_path / "first", tmp_path / "first.log").start()
        try:
            yield server.port
            assert server.client.get("/healthz").status_code == 200  # untouched by the second
        finally:
            server.close()
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            yield sock.getsockname()[1]


@pytest.mark.parametrize(("by", "via"), [("serve", "--port"), ("socket", "OVBENCH_PORT")])
def test_serve_on_a_taken_port_exits_1_naming_it_and_the_way_out(
    tmp_path: Path, by: str, via: str
) -> None:
    data_dir = tmp_path / "second"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVBENCH_")}
    env[RUN_LOCK_ENV] = str(own_run_lock(data_dir))  # never the host's lock, should it start
    with _taken_port(by, tmp_path) as port:
        args = [OVBENCH, "serve", "--data-dir", str(data_dir)]
        if via == "--port":
            args += ["--port", str(port)]
        else:
            env["OVBENCH_PORT"] = str(port)
        proc, out = run_until_exit(args, env)
    assert proc.returncode == 1, out
    assert f"ERROR [serve {proc.pid}] app.serve: cannot listen on http://127.0.0.1:{port}" in out
    assert f"port {port} is already in use" in out
    for way_out in ("--port N", "OVBENCH_PORT=N", "make serve PORT=N"):
        assert way_out in out
    assert "serving on" not in out and "Traceback" not in out
    assert "worker process" not in out  # refused before a worker was started ...
    assert not group_alive(proc.pid)  # ... and nothing of it is left running
    assert not data_dir.exists()  # nor was the data dir touched


def test_devices_lists_what_openvino_sees_here() -> None:
    import openvino as ov

    core = ov.Core()
    listed = subprocess.run(
        [OVBENCH, "devices", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    devices = {d["name"]: d for d in json.loads(listed.stdout)}
    assert list(devices) == list(core.available_devices)
    assert devices["CPU"]["full_name"] == core.get_property("CPU", "FULL_DEVICE_NAME")
    plain = subprocess.run([OVBENCH, "devices"], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0
    assert f"CPU: {devices['CPU']['full_name']}" in plain.stdout.splitlines()
