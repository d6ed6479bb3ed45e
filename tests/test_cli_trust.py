"""`ovbench run --repeats`, `ovbench run --from-result` and `ovbench compare`, in process, on
the tiny CNN with real OpenVINO on CPU."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.cli_compare import SERVER_ENV
from app.engine.compare import Comparison
from tests.factories import write_nhwc_model

# The CLI's guard samples the host for a second before each run; on this shared machine it
# must not also wait up to 10 s for a quiet host.
NO_WAIT = ["--guard-wait-s", "0"]
# The saved run's options: none of them the CLI's defaults.
SAVED_OPTIONS = [
    "-api",
    "async",
    "-niter",
    "200",
    "-nireq",
    "4",
    "--repeats",
    "3",
    "-latency_percentile",
    "90",
    "-infer_precision",
    "f32",
    "--rtol",
    "0.05",
]


def _run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["run", *argv, "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.fixture(scope="module")
def saved(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ovbench run ... --json > saved.json` on the tiny CNN: 3 async runs of 200 iterations."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "-m", str(tiny_model), *SAVED_OPTIONS, *NO_WAIT, "--json"])
    assert code == 0
    path = tmp_path_factory.mktemp("saved") / "saved.json"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- repeats ----------------------------------------------------------------------------------


def test_repeats_print_the_spread_and_the_verdict(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-m", str(tiny_model), "--repeats", "3", "-niter", "50", *NO_WAIT]) == 0
    lines = capsys.readouterr().out.splitlines()
    repeats = [line for line in lines if line.startswith("[ INFO ] Repeats: 3 runs; median ")]
    assert len(repeats) == 1
    assert "(the median run)" in repeats[0] and "FPS (min " in repeats[0]
    assert any(line.startswith("[ INFO ] Repeats: median latency ") for line in lines)
    stability = [line for line in lines if line.startswith("[ INFO ] Stability: ")]
    assert len(stability) == 1
    assert stability[0].split()[4].rstrip(":") in ("stable", "noisy", "drifting", "too_short")
    assert any(line.startswith("[BENCHMARK RESULT] Throughput is ") for line in lines)


def test_repeats_in_the_json(saved: Path) -> None:
    result = _load(saved)
    assert len(result["runs"]) == 3
    assert [run["iterations"] for run in result["runs"]] == [200, 200, 200]
    assert result["aggregate"]["repeats"] == 3
    assert result["stability"]["verdict"] in ("stable", "noisy", "drifting", "too_short")


# --- run --from-result ------------------------------------------------------------------------


def test_from_result_reruns_with_the_saved_options(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _load(saved)
    again = _run_json(["--from-result", str(saved)], capsys)
    assert again["api"] == "async"
    assert again["limits"] == {"niter": 200, "duration_s": None, "nireq": 4}
    assert len(again["runs"]) == 3
    assert again["latency_ms"]["percentile"] == 90
    assert again["config"]["inference_precision"] == "f32"
    assert again["outputs"]["rtol"] == 0.05
    assert again["provenance"]["spec"] == before["provenance"]["spec"]
    assert again["provenance"]["model_sha256"] == before["provenance"]["model_sha256"]
    assert not any("differ" in w for w in again["warnings"])


def test_from_result_options_on_the_command_line_win(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = _run_json(["--from-result", str(saved), "-niter", "40", "--repeats", "2"], capsys)
    assert again["limits"]["niter"] == 40
    assert [run["iterations"] for run in again["runs"]] == [40, 40]
    assert again["api"] == "async" and again["limits"]["nireq"] == 4  # still the saved ones
    assert again["provenance"]["spec"]["niter"] == 40


def test_from_result_an_option_given_at_its_default_value_still_wins(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-api sync` is what the user typed: it must win over the saved async even though sync
    is also the CLI's default."""
    again = _run_json(["--from-result", str(saved), "-api", "sync", "--repeats", "1"], capsys)
    assert again["api"] == "sync"
    assert len(again["runs"]) == 1


def test_from_result_whose_model_is_not_here_asks_for_m(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _load(saved)
    data["provenance"]["spec"]["model_path"] = str(tmp_path / "elsewhere" / "tiny_cnn.xml")
    moved = _write(tmp_path / "moved.json", data)
    capsys.readouterr()
    assert main(["run", "--from-result", str(moved)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("[ ERROR ] --from-result: ")
    assert "-m" in captured.err and "not on this machine" in captured.err
    assert data["provenance"]["model_sha256"] in captured.err
    assert "Traceback" not in captured.err


def test_from_result_with_m_runs_the_model_given(
    saved: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _load(saved)
    data["provenance"]["spec"]["model_path"] = str(tmp_path / "elsewhere" / "tiny_cnn.xml")
    moved = _write(tmp_path / "moved.json", data)
    # The same files under another folder: the same model.
    copy = tmp_path / "here" / "tiny_cnn.xml"
    copy.parent.mkdir()
    shutil.copyfile(tiny_model, copy)
    shutil.copyfile(tiny_model.with_suffix(".bin"), copy.with_suffix(".bin"))
    again = _run_json(["--from-result", str(moved), "-m", str(copy)], capsys)
    assert again["provenance"]["spec"]["model_path"] == str(copy)
    assert again["limits"] == {"niter": 200, "duration_s": None, "nireq": 4}
    assert again["provenance"]["model_sha256"] == data["provenance"]["model_sha256"]
    assert not any("differ" in w for w in again["warnings"])


def test_from_result_with_another_model_warns_that_it_differs(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_nhwc_model(tmp_path)
    capsys.readouterr()
    assert main(["run", "--from-result", str(saved), "-m", str(other), "--json"]) == 0
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    saved_sha = _load(saved)["provenance"]["model_sha256"]
    new_sha = again["provenance"]["model_sha256"]
    assert new_sha != saved_sha
    (warning,) = [w for w in again["warnings"] if w.startswith("The model differ")]
    assert saved_sha in warning and new_sha in warning and "sha256" in warning
    assert f"[ WARNING ] {warning}" in captured.err


# --- compare ----------------------------------------------------------------------------------


def _slowed(result: dict[str, Any], factor: float) -> dict[str, Any]:
    """The result as if every request had taken `factor` times as long."""
    slowed = json.loads(json.dumps(result))

    def scale(figures: dict[str, Any]) -> None:
        figures["throughput_fps"] /= factor
        if figures.get("latency_ms"):
            for key, value in figures["latency_ms"].items():
                if key != "percentile":
                    figures["latency_ms"][key] = value * factor
        for point in figures.get("timeline") or []:
            point["throughput_fps"] /= factor
            if point["median_latency_ms"] is not None:
                point["median_latency_ms"] *= factor

    scale(slowed)
    for run in slowed["runs"]:
        scale(run)
    return slowed


def test_compare_prints_the_table_and_the_verdict(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["compare", str(saved), str(saved)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[ INFO ] Compare: candidate ")
    assert lines[1].split()[:3] == ["metric", "baseline", "candidate"]
    metrics = [line.split()[0] for line in lines[2:7]]
    assert metrics == [
        "throughput_fps",
        "latency_median_ms",
        "latency_p99_ms",
        "first_inference_ms",
        "compile_ms",
    ]
    assert lines[-1] == "[BENCHMARK RESULT] Verdict: no_change"


def test_compare_json_is_a_comparison(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["compare", str(saved), str(saved), "--json"]) == 0
    comparison = Comparison.model_validate(json.loads(capsys.readouterr().out))
    assert comparison.verdict == "no_change"
    assert comparison.threshold == 0.02
    assert comparison.differences == []
    throughput = comparison.metrics[0]
    assert throughput.metric == "throughput_fps" and throughput.ratio == 1.0
    assert throughput.ci_low is not None and "repeats (3 vs 3 runs)" in throughput.method


def test_fail_on_regression_exits_1_for_a_clearly_slower_candidate(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 5x slower: the regression survives any spread the three short runs can have here.
    slower = _write(tmp_path / "slower.json", _slowed(_load(saved), 5.0))
    capsys.readouterr()
    assert main(["compare", str(saved), str(slower), "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert "[BENCHMARK RESULT] Verdict: regressed" in out
    throughput = next(line for line in out.splitlines() if line.startswith("throughput_fps "))
    assert " 0.200 " in throughput and "regressed" in throughput

    # The other way round it is an improvement: no failure.
    assert main(["compare", str(slower), str(saved), "--fail-on-regression", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "improved"
    # Without the flag a regression exits 0.
    assert main(["compare", str(saved), str(slower)]) == 0


def test_compare_a_file_with_a_job_id_is_exit_2(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["compare", str(saved), "0b7d1c3e-job-id"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("[ ERROR ] ")
    assert "not one of each" in err and "0b7d1c3e-job-id" in err


def test_compare_job_ids_without_a_server_is_exit_2_naming_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    capsys.readouterr()
    assert main(["compare", "job-a", "job-b"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--server" in captured.err and SERVER_ENV in captured.err
    assert "Traceback" not in captured.err
