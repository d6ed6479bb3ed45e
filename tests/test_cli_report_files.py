"""`ovbench run -report_type ... -report_folder DIR [-json_stats]`: benchmark_app's report files
after the run, checked against the real benchmark_app given the very same arguments; the
folder is created, or refused (exit 2) before anything runs."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.cli_report_files import write_report_files
from app.engine.integrity import HostGuardRules
from app.engine.report_formats import counters_report
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkResult, BenchmarkSpec
from tests.engine.test_report_formats import skeleton

BENCHMARK_APP = str(Path(sys.executable).with_name("benchmark_app"))


def _stored_lines(output: str, folder: Path) -> list[str]:
    """benchmark_app's `... report is stored to <path>` lines, the folder written as DIR."""
    return [
        line.replace(str(folder), "DIR")
        for line in output.splitlines()
        if "report is stored to" in line
    ]


@pytest.mark.parametrize(
    "options",
    [
        ["-report_type", "average_counters"],
        # -nireq 2 on both sides (benchmark_app's default is the device's optimal number):
        # one block per infer request, two in each file.
        ["-report_type", "detailed_counters", "-json_stats", "-nireq", "2"],
    ],
    ids=["average_counters_csv", "detailed_counters_json"],
)
def test_same_files_and_lines_as_benchmark_app_with_the_same_arguments(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    common = ["-m", str(tiny_model), "-d", "CPU", "-api", "async", "-niter", "20", *options]
    theirs_dir, ours_dir = tmp_path / "theirs", tmp_path / "ours"
    theirs_dir.mkdir()  # benchmark_app does not create it
    done = subprocess.run(
        [BENCHMARK_APP, *common, "-report_folder", str(theirs_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert main(["run", *common, "-report_folder", str(ours_dir)]) == 0
    out = capsys.readouterr().out

    theirs = {p.name: p.read_text() for p in theirs_dir.iterdir()}
    ours = {p.name: p.read_text() for p in ours_dir.iterdir()}
    assert sorted(ours) == sorted(theirs) and len(ours) == 2
    for name, text in ours.items():
        # The same skeleton, the command line section's field names included: the same
        # arguments were typed.
        assert skeleton(name, text) == skeleton(name, theirs[name]), name
    assert _stored_lines(out, ours_dir) == _stored_lines(done.stdout, theirs_dir)
    if "detailed_counters" in options:
        name = "benchmark_detailed_counters_report.json"
        blocks = [json.loads(files[name])["detailed_performance"] for files in (ours, theirs)]
        assert len(blocks[0]) == len(blocks[1]) == 2
        assert "averaged over" not in out  # the fallback's warning: not for a fresh run
    # benchmark_app turns the counters on for these report types, and says so.
    assert "[ WARNING ] Turn on performance counters for CPU device since report type" in out
    assert "Turn on performance counters for CPU device" in done.stdout


def test_dashed_options_create_the_folder_and_keep_json_stdout_clean(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "new" / "reports"
    argv = ["run", "-m", str(tiny_model), "-niter", "10", "-pc", "--json"]
    argv += ["--report-type", "no_counters", "--report-folder", str(folder), "--json-stats"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # nothing but the result JSON on stdout
    assert sorted(p.name for p in folder.iterdir()) == ["benchmark_report.json"]
    report = json.loads((folder / "benchmark_report.json").read_text())
    assert report["execution_results"]["total number of iterations"] == str(result["iterations"])
    assert report["execution_results"]["throughput"] == f"{result['throughput_fps']:.2f}"
    assert report["cmd_options"]["--report-type"] == "no_counters"
    assert report["cmd_options"]["--json-stats"] == ""
    stored = f"[ INFO ] Statistics report is stored to {folder / 'benchmark_report.json'}"
    assert stored in captured.err.splitlines()
    # no_counters writes no counters file, even with -pc.
    assert "Performance counters report" not in captured.err


def test_a_folder_that_cannot_be_written_is_exit_2_before_the_run(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = ["run", "-m", str(tiny_model), "-niter", "10"]
    assert main([*argv, "-report_type", "no_counters", "-report_folder", str(blocker / "x")]) == 2
    captured = capsys.readouterr()
    assert "[ ERROR ] -report_folder" in captured.err and str(blocker / "x") in captured.err
    assert "Read model took" not in captured.out + captured.err  # nothing ran


def test_report_folder_without_report_type_writes_nothing_and_says_so(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "reports"
    assert main(["run", "-m", str(tiny_model), "-niter", "5", "-report_folder", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "without -report_type no report files are written" in out
    assert not folder.exists()
    assert "report is stored to" not in out


def test_detailed_counters_of_a_result_without_each_request_are_their_average_with_a_warning(
    tiny_model: Path, tmp_path: Path
) -> None:
    """A result stored before ovbench kept each request's counters (perf_counters_per_request
    absent): one block, the average, and a warning that says so."""
    spec = BenchmarkSpec(
        model_path=str(tiny_model),
        api="async",
        niter=4,
        nireq=2,
        perf_counters=True,
        guard=HostGuardRules(sample_s=0),
    )
    fresh = run_benchmark(spec)
    stored = fresh.model_dump()
    del stored["perf_counters_per_request"]
    old = BenchmarkResult.model_validate(stored)
    args = argparse.Namespace(
        report_type="detailed_counters", json_stats=False, report_folder=str(tmp_path)
    )
    report = tmp_path / "benchmark_detailed_counters_report.csv"
    for result, blocks, warned in ((fresh, 2, False), (old, 1, True)):
        out = io.StringIO()
        assert write_report_files(result, args, ["-report_type", "detailed_counters"], out) == 0
        assert report.read_text().count("layerName;") == blocks
        assert ("[ WARNING ]" in out.getvalue() and "averaged over the 2" in out.getvalue()) is (
            warned
        )
    assert report.read_text() == counters_report(fresh, "average_counters", "csv").text
