"""`ovbench sweep`: real runs of the tiny CNN at every point, the best point under the
constraints, the search's skips, the text table, usage errors and Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.cli import main

OVBENCH = str(Path(sys.executable).with_name("ovbench"))
# Short runs, and no host guard sample (a second before each point).
FAST = ["-niter", "24", "--guard-sample-s", "0"]


def _sweep(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["sweep", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _sweep_json(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], str]:
    code, out, err = _sweep([*argv, "--json"], capsys)
    sweep: dict[str, Any] = json.loads(out)  # stdout holds the JSON and nothing else
    return code, sweep, err


def _fastest_meeting(points: list[dict[str, Any]]) -> int | None:
    """The best point by the rules, from the points' own figures: the highest throughput
    among the succeeded points meeting the constraints, the earlier one on a tie."""
    meeting = [p for p in points if p["status"] == "succeeded" and p["meets_constraints"]]
    if not meeting:
        return None
    best: int = max(meeting, key=lambda p: (p["throughput_fps"], -p["index"]))["index"]
    return best


def _table_rows(out: str) -> list[list[str]]:
    """The table's lines after its header, split on runs of two or more spaces: reliable up
    to the meets column (the pareto and note cells may be empty)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#  "))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("["):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_grid_runs_every_point_in_order_and_names_the_fastest(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), "-api", "async", *FAST, "--grid", "nireq=4,1,2"]
    code, sweep, err = _sweep_json(argv, capsys)

    assert code == 0
    assert sweep["grid"] == {"nireq": [1, 2, 4]}
    assert sweep["base"] == {
        "model_path": str(tiny_model),
        "api": "async",
        "niter": 24,
        "guard_sample_s": 0.0,
    }
    assert (sweep["strategy"], sweep["objective"], sweep["status"]) == (
        "grid",
        "throughput_fps",
        "succeeded",
    )
    points = sweep["points"]
    assert [p["index"] for p in points] == [0, 1, 2]
    assert [p["values"] for p in points] == [{"nireq": 1}, {"nireq": 2}, {"nireq": 4}]
    assert [p["status"] for p in points] == ["succeeded"] * 3
    assert [p["nireq_used"] for p in points] == [1, 2, 4]  # each point really ran its value
    assert all(p["throughput_fps"] > 0 and p["meets_constraints"] for p in points)
    assert sweep["summary"]["best"] == _fastest_meeting(points)
    assert sweep["summary"]["message"].startswith(f"Best: #{sweep['summary']['best']} ")
    assert sweep["wall_time_s"] > 0
    for index, value in ((0, 1), (1, 2), (2, 4)):
        assert f"[ INFO ] Point #{index} ({index + 1} of 3) nireq={value}: running" in err


def test_sweeping_nireq_without_api_runs_async(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, sweep, err = _sweep_json(["-m", str(tiny_model), *FAST, "--grid", "nireq=1,2"], capsys)

    assert code == 0
    assert sweep["base"]["api"] == "async"
    # the sync API would run one request at both points
    assert [p["nireq_used"] for p in sweep["points"]] == [1, 2]
    assert "[ INFO ] -api async: nireq is swept, and the sync API runs one request" in err


def test_a_bound_between_two_points_excludes_the_slower_one(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A batch of 32 images takes far longer per request than one image (about 12x here).
    argv = ["-m", str(tiny_model), "-niter", "100", "--guard-sample-s", "0"]
    argv += ["--grid", "batch=1,32"]
    code, first, _ = _sweep_json(argv, capsys)
    assert code == 0
    one, thirty_two = (p["latency_median_ms"] for p in first["points"])
    assert thirty_two > one
    bound = math.sqrt(one * thirty_two)  # between the two, a wide margin from each

    code, sweep, _ = _sweep_json([*argv, "--median-max-ms", f"{bound:.6f}"], capsys)

    assert code == 0
    assert sweep["constraints"]["latency_median_ms"] == pytest.approx(bound, rel=1e-5)
    points = sweep["points"]
    for p in points:
        assert p["status"] == "succeeded"
        assert p["meets_constraints"] == (p["latency_median_ms"] <= bound)
        assert bool(p["violations"]) == (not p["meets_constraints"])
    by_batch = {p["values"]["batch"]: p for p in points}
    assert by_batch[32]["meets_constraints"] is False
    assert by_batch[32]["violations"][0].startswith("median latency ")
    assert sweep["summary"]["best"] == _fastest_meeting(points) == by_batch[1]["index"]


def test_an_impossible_bound_names_the_closest_point_and_exits_0(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), *FAST, "--grid", "batch=1,2", "--p99-max-ms", "0.0001"]
    code, sweep, _ = _sweep_json(argv, capsys)

    assert code == 0
    summary, points = sweep["summary"], sweep["points"]
    assert [p["status"] for p in points] == ["succeeded", "succeeded"]
    assert [p["meets_constraints"] for p in points] == [False, False]
    assert summary["best"] is None
    # one latency bound: the closest is the point with the lowest p99
    closest = min(points, key=lambda p: (p["latency_p99_ms"], p["index"]))
    assert summary["closest"] == closest["index"]
    assert summary["message"].startswith("No point meets p99 ≤ 0.0001 ms; the closest is ")


def test_text_output_prints_the_table_best_point_and_wall_time(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), "-api", "async", *FAST, "--grid", "nireq=1,2"]
    argv += ["nstreams=1,2"]
    code, out, _ = _sweep(argv, capsys)

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "[ INFO ] Sweep of 4 points: nstreams 1, 2 × nireq 1, 2; strategy grid, "
        "objective throughput_fps"
    )
    header = next(line for line in lines if line.startswith("#  "))
    assert re.split(r"\s{2,}", header) == [
        "#",
        "nstreams",
        "nireq",
        "status",
        "throughput FPS",
        "median ms",
        "p99 ms",
        "verdict",
        "meets",
        "pareto",
        "note",
    ]
    rows = _table_rows(out)
    assert [row[:4] for row in rows] == [
        ["0", "1", "1", "succeeded"],
        ["1", "1", "2", "succeeded"],
        ["2", "2", "1", "succeeded"],
        ["3", "2", "2", "succeeded"],
    ]
    for row in rows:
        for latency in row[5:7]:  # sub-millisecond latencies keep their digits
            assert re.fullmatch(r"\d+\.\d{4}", latency) and float(latency) > 0
        assert row[8] == "yes"
    fastest = max(rows, key=lambda row: (float(row[4]), -int(row[0])))
    best = [line for line in lines if line.startswith("[ INFO ] Best: ")]
    assert len(best) == 1 and best[0].startswith(f"[ INFO ] Best: #{fastest[0]} ")
    assert re.fullmatch(
        r"\[ INFO \] Sweep wall time: \d+\.\d\d s \(measured \d+\.\d\d s, setup \d+\.\d\d s\)",
        lines[-1],
    )


def test_text_output_warns_when_no_point_meets_the_bound(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), *FAST, "--grid", "batch=1,2", "--min-fps", "1e9"]
    code, out, _ = _sweep(argv, capsys)

    assert code == 0
    assert "[ INFO ] Constraints: throughput at least 1e+09 FPS" in out
    assert [row[7] for row in _table_rows(out)] == ["no", "no"]  # the meets column
    warning = [line for line in out.splitlines() if line.startswith("[ WARNING ] No point ")]
    assert len(warning) == 1
    assert warning[0].startswith(
        "[ WARNING ] No point meets throughput ≥ 1000000000.0 FPS; the closest is #"
    )
    assert "[ INFO ] Best" not in out


def test_search_stops_once_throughput_stops_growing(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), "-api", "async", *FAST, "--grid", "nireq=1,2,4"]
    argv += ["--strategy", "search", "--min-gain", "10"]  # 1000%: never reached
    code, sweep, err = _sweep_json(argv, capsys)

    assert code == 0
    assert sweep["min_gain"] == 10
    statuses = {p["values"]["nireq"]: p["status"] for p in sweep["points"]}
    assert statuses == {1: "succeeded", 2: "succeeded", 4: "skipped"}
    skipped = sweep["points"][2]
    assert "stopped growing" in skipped["skip_reason"]
    assert skipped["throughput_fps"] is None and skipped["meets_constraints"] is None
    assert "Point #2 (3 of 3) nireq=4: skipped: throughput stopped growing" in err
    assert "Point #2 (3 of 3) nireq=4: running" not in err


def test_search_skips_more_requests_once_a_latency_bound_broke(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), "-api", "async", *FAST, "--grid", "nireq=1,2,4"]
    argv += ["--strategy", "search", "--p99-max-ms", "0.0001"]
    code, sweep, _ = _sweep_json(argv, capsys)

    assert code == 0
    points = sweep["points"]
    assert [p["status"] for p in points] == ["succeeded", "skipped", "skipped"]
    for p in points[1:]:
        assert p["skip_reason"].startswith("nireq 1 already broke the bound (p99 ")
    assert sweep["summary"]["closest"] == 0


def test_search_skips_bigger_batches_once_the_smallest_broke_a_bound(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), *FAST, "--grid", "batch=1,2,4"]
    argv += ["--strategy", "search", "--median-max-ms", "0.0001"]
    code, sweep, _ = _sweep_json(argv, capsys)

    assert code == 0
    points = sweep["points"]
    assert [p["status"] for p in points] == ["succeeded", "skipped", "skipped"]
    for p in points[1:]:
        assert p["skip_reason"].startswith("batch 1 already broke the bound at batch=1 (median ")


def test_a_failed_point_keeps_its_error_and_the_others_run(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-m", str(tiny_model), *FAST, "--grid", "device=NOSUCHDEVICE,CPU"]
    code, sweep, err = _sweep_json(argv, capsys)

    assert code == 0
    failed, succeeded = sweep["points"]
    assert failed["status"] == "failed" and "NOSUCHDEVICE" in failed["error"]
    assert failed["throughput_fps"] is None
    assert succeeded["status"] == "succeeded" and succeeded["error"] is None
    assert sweep["summary"]["best"] == succeeded["index"]
    assert "[ ERROR ] Point #0 (1 of 2) device=NOSUCHDEVICE: failed: " in err


def test_no_point_succeeding_exits_1(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-m", str(tiny_model), *FAST, "--grid", "device=NOSUCHDEVICE,NOROOM"]
    code, out, err = _sweep(argv, capsys)

    assert code == 1
    assert [row[2] for row in _table_rows(out)] == ["failed", "failed"]
    assert "[ ERROR ] No point succeeded: 2 failed (see each point's error)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--grid", "threads=1,2"],
            "with AXIS one of device, api, hint, infer_precision, batch, nstreams, nireq",
        ),
        (["-nireq", "2", "--grid", "nireq=1,2"], "-nireq and --grid nireq=... both set nireq"),
        (["-b", "1", "--grid", "batch=1,2"], "-b and --grid batch=... both set batch"),
        (["--grid", "nireq=1,2,1"], "'nireq=1,2,1': nireq lists 1 more than once"),
        (["--grid", "nireq=1", "nireq=2"], "--grid names nireq twice"),
        (["--grid", "batch=two"], "batch values are whole numbers of at least 1, not 'two'"),
        (["--grid", "api=fast"], "api values are sync, async, not 'fast'"),
        (["-api", "sync", "--grid", "nireq=1,2"], "-api sync runs one infer request"),
        (["--from-result", "saved.json", "--grid", "nireq=1"], "--from-result is for ovbench run"),
        (["--grid", "nireq=1", "--p99-max-ms", "0"], "--p99-max-ms: must be more than 0"),
        ([], "the following arguments are required: --grid"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "-m", "model.xml", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: ovbench sweep" in err
    assert message in err


def test_help_shows_the_sweep_options_and_not_from_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "-h"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--grid", "--strategy", "--objective", "--p99-max-ms", "--min-fps", "-nireq"):
        assert option in out
    assert "--from-result" not in out


def test_ctrl_c_prints_what_is_done_and_exits_130(tiny_model: Path) -> None:
    argv = ["-m", str(tiny_model), "-t", "5", "--guard-sample-s", "0", "--grid", "batch=1,2"]
    proc = subprocess.Popen(
        [OVBENCH, "sweep", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the point's line comes before its 5 s run
            seen.append(line)
            if line.startswith("[ INFO ] Point #0 (1 of 2) batch=1: running"):
                proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C does
                break
        out, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    assert proc.returncode == 130, "".join(seen) + out + err
    assert [row[2] for row in _table_rows(out)] == ["cancelled", "cancelled"]
    assert "[ ERROR ] Interrupted: 2 points cancelled." in err
    assert "No point succeeded" not in err
