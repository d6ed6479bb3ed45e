"""benchmark_app's report files from a BenchmarkResult, checked against the REAL benchmark_app.

The venv's `benchmark_app` console script and our engine run the tiny model with the same
options; their files must have the same names, section titles and field names in the same
order, and values that parse the same way (numbers where benchmark_app writes numbers, with as
many decimals; strings and booleans where it writes those). A misspelled field, a missing or
extra line, 3 decimals for 2: each changes the files' skeletons and fails here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.engine import report_formats
from app.engine.integrity import HostGuardRules
from app.engine.report_formats import FLAT_COLUMNS, ReportLayout, ReportType
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkResult, BenchmarkSpec, PerfCounter
from tests.factories import write_tiny_model

BENCHMARK_APP = str(Path(sys.executable).with_name("benchmark_app"))

# Async: benchmark_app's flags in the order `equivalent_command_line` names them, so that the
# command line a job's report shows can be checked against benchmark_app's as well.
ASYNC_FLAGS = ["-d", "CPU", "-api", "async", "-niter", "20", "-nireq", "2", "-pc"]
ASYNC_SPEC: dict[str, Any] = {
    "device": "CPU",
    "api": "async",
    "niter": 20,
    "nireq": 2,
    "perf_counters": True,
}
# Sync, time-bounded, explicit streams, a reshape and another percentile: the lines that come
# and go (number of CPU streams, reshape model time, latency (90 percentile), iterations None).
SYNC_FLAGS = ["-d", "CPU", "-api", "sync", "-t", "1", "-nstreams", "2", "-hint", "none"]
SYNC_FLAGS += ["-shape", "[1,3,32,32]", "-latency_percentile", "90"]
SYNC_SPEC: dict[str, Any] = {
    "device": "CPU",
    "api": "sync",
    "duration_s": 1,
    "nstreams": "2",
    "hint": "none",
    "shape": "[1,3,32,32]",
    "latency_percentile": 90,
}
# (flags, report type, layout) of each benchmark_app run compared.
CASES = {
    "average_csv": (ASYNC_FLAGS, "average_counters", "csv"),
    "average_json": (ASYNC_FLAGS, "average_counters", "json"),
    "detailed_csv": (ASYNC_FLAGS, "detailed_counters", "csv"),
    "detailed_json": (ASYNC_FLAGS, "detailed_counters", "json"),
    "sync_csv": (SYNC_FLAGS, "no_counters", "csv"),
    "sync_json": (SYNC_FLAGS, "no_counters", "json"),
}


@dataclass(frozen=True)
class Case:
    argv: list[str]  # benchmark_app's arguments (the report folder's among them)
    report_type: ReportType
    layout: ReportLayout
    theirs: dict[str, str]  # file name -> text, as benchmark_app wrote them
    result: BenchmarkResult  # our engine's run with the same options


def _argv(model: Path, flags: list[str], report_type: str, layout: str, folder: Path) -> list[str]:
    argv = ["-m", str(model), *flags, "-report_type", report_type]
    if layout == "json":
        argv.append("-json_stats")
    return [*argv, "-report_folder", str(folder)]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Each case run by benchmark_app, and our engine's two runs (async, sync)."""
    root = tmp_path_factory.mktemp("report_formats")
    model = write_tiny_model(root / "model")
    guard = HostGuardRules(sample_s=0)
    ours = {
        "async": run_benchmark(BenchmarkSpec(model_path=str(model), guard=guard, **ASYNC_SPEC)),
        "sync": run_benchmark(BenchmarkSpec(model_path=str(model), guard=guard, **SYNC_SPEC)),
    }
    built = {}
    for name, (flags, report_type, layout) in CASES.items():
        folder = root / name
        folder.mkdir()
        argv = _argv(model, flags, report_type, layout, folder)
        done = subprocess.run(
            [BENCHMARK_APP, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        theirs = {path.name: path.read_text() for path in sorted(folder.iterdir())}
        result = ours["async" if flags is ASYNC_FLAGS else "sync"]
        built[name] = Case(argv, report_type, layout, theirs, result)  # type: ignore[arg-type]
    return built


def _ours(case: Case) -> dict[str, str]:
    files = report_formats.benchmark_app_files(
        case.result, case.report_type, case.layout, report_formats.parse_command_line(case.argv)
    )
    return {file.name: file.text for file in files}


# ------------------------------------------------------------------ skeletons


def value_kind(value: object) -> str:
    """How a scraper reads a value: a bool, an int, a number with N decimals, None, text."""
    if isinstance(value, bool):
        return "bool"
    if not isinstance(value, str):
        return type(value).__name__
    if value in ("True", "False"):
        return "bool-text"
    if value == "None":
        return "None"
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if decimals := re.fullmatch(r"-?\d+\.(\d+)", value):
        return f"fixed{len(decimals.group(1))}"
    return "text"


def csv_statistics_skeleton(text: str) -> list[str]:
    """Each line, with the value after `;` replaced by its kind (titles and blanks as they are)."""
    lines = []
    for line in text.split("\n"):
        key, sep, value = line.partition(";")
        lines.append(f"{key};{value_kind(value)}" if sep else line)
    return lines


def counters_csv_skeleton(text: str) -> list[str]:
    """The counters file's header, Total and blank lines as they are, every cell of a layer's
    line by its kind, the layers of a block counted as one."""
    lines: list[str] = []
    for line in text.split("\n"):
        cells = line.split(";")
        if line.startswith(("layerName;", "Total;")) or not line:
            lines.append(";".join(value_kind(c) if c[:1].isdigit() else c for c in cells))
        elif not lines or lines[-1] != "<layers>":
            assert len(cells) == 6, line
            assert [value_kind(c) for c in cells[1:]] == [
                "text",
                "text",
                "text",
                "fixed3",
                "fixed3",
            ], line
            assert cells[1].startswith("Status."), line
            lines.append("<layers>")
    return lines


def json_skeleton(value: Any) -> Any:
    """The JSON with every leaf replaced by its kind (lists: the skeleton of their first item)."""
    if isinstance(value, dict):
        return {key: json_skeleton(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_skeleton(value[0])] if value else []
    return value_kind(value)


def skeleton(name: str, text: str) -> Any:
    """The file's skeleton; the detailed counters' blocks (one per infer request) each."""
    if name.endswith(".json"):
        body = json.loads(text)
        blocks = body.get("detailed_performance")
        skeleton_body = json_skeleton(body)
        if blocks is not None:
            skeleton_body["detailed_performance"] = [json_skeleton(block) for block in blocks]
        return skeleton_body
    if name == "benchmark_report.csv":
        return csv_statistics_skeleton(text)
    return counters_csv_skeleton(text)


def csv_blocks(text: str) -> list[str]:
    """A counters CSV's blocks (header to Total), each with its blank line."""
    return [block + "\n\n" for block in text.split("\n\n") if block]


def csv_nodes(block: str) -> list[tuple[str, str]]:
    """(name, layer type) of each layer of a counters CSV block; OpenVINO numbers the names of
    the nodes it adds (Convert_40) by how many it made in the process, so the numbers go."""
    cells = [line.split(";") for line in block.split("\n")[1:-3]]  # header .. Total, blank
    return [(re.sub(r"_\d+", "_N", c[0]), c[2]) for c in cells]


# ------------------------------------------------------------------ against benchmark_app


@pytest.mark.parametrize("name", list(CASES))
def test_same_files_titles_fields_and_value_kinds_as_benchmark_app(
    cases: dict[str, Case], name: str
) -> None:
    case = cases[name]
    ours = _ours(case)
    assert sorted(ours) == sorted(case.theirs)
    for file_name, text in ours.items():
        assert skeleton(file_name, text) == skeleton(file_name, case.theirs[file_name]), file_name


def test_statistics_csv_has_benchmark_app_sections_and_separator(cases: dict[str, Case]) -> None:
    theirs = cases["sync_csv"].theirs["benchmark_report.csv"]
    ours = _ours(cases["sync_csv"])["benchmark_report.csv"]
    titles = [line for line in ours.split("\n") if line and ";" not in line]
    assert titles == list(report_formats.SECTION_TITLES)
    assert [line for line in theirs.split("\n") if line and ";" not in line] == titles
    # The lines that come and go with the options are there, in both.
    for key in (
        "number of CPU streams;2",
        "number of iterations;None",
        "duration (ms);1000",
        "reshape model time (ms);",
        "latency (90 percentile) (ms);",
    ):
        assert key in theirs and key in ours, key
    assert ours.endswith("\n\n") and theirs.endswith("\n\n")


def test_statistics_json_keeps_benchmark_app_types(cases: dict[str, Case]) -> None:
    theirs = json.loads(cases["average_json"].theirs["benchmark_report.json"])
    ours = json.loads(_ours(cases["average_json"])["benchmark_report.json"])
    assert list(ours) == list(theirs) == list(report_formats.JSON_SECTION_KEYS)
    for section in ours:
        assert {k: type(v) for k, v in ours[section].items()} == {
            k: type(v) for k, v in theirs[section].items()
        }
    assert ours["configuration_setup"]["inference_only"] is True


def test_counters_list_the_nodes_benchmark_app_lists(cases: dict[str, Case]) -> None:
    case = cases["average_csv"]
    name = "benchmark_average_counters_report.csv"
    (ours_average,) = csv_blocks(_ours(case)[name])
    (their_average,) = csv_blocks(case.theirs[name])
    assert csv_nodes(ours_average) == csv_nodes(their_average)


def test_detailed_counters_have_one_block_per_infer_request_as_benchmark_app(
    cases: dict[str, Case],
) -> None:
    detailed = cases["detailed_csv"]
    assert detailed.result.config.nireq == 2
    name = "benchmark_detailed_counters_report.csv"
    theirs, ours = csv_blocks(detailed.theirs[name]), csv_blocks(_ours(detailed)[name])
    assert len(theirs) == len(ours) == 2
    assert "".join(ours) == _ours(detailed)[name]  # nothing but the blocks
    for our_block, their_block in zip(ours, theirs, strict=True):
        assert csv_nodes(our_block) == csv_nodes(their_block)
    # Each block is that request's own counters, not their average.
    per_request = detailed.result.perf_counters_per_request
    assert per_request is not None and len(per_request) == 2
    for block, counters in zip(ours, per_request, strict=True):
        alone = detailed.result.model_copy(update={"perf_counters_per_request": [counters]})
        assert block == report_formats.counters_report(alone, "detailed_counters", "csv").text
        total = block.split("\n")[-3].split(";")
        assert total[4] == f"{sum(c.real_time_ms for c in counters):.3f}"

    name = "benchmark_detailed_counters_report.json"
    their_json = json.loads(cases["detailed_json"].theirs[name])
    our_json = json.loads(_ours(cases["detailed_json"])[name])
    assert list(our_json) == list(their_json) == ["report_type", "detailed_performance"]
    assert len(our_json["detailed_performance"]) == len(their_json["detailed_performance"]) == 2
    for our_block, their_block in zip(
        our_json["detailed_performance"], their_json["detailed_performance"], strict=True
    ):
        assert list(our_block) == list(their_block)
        assert [n["node_type"] for n in our_block["nodes"]] == [
            n["node_type"] for n in their_block["nodes"]
        ]


def test_a_jobs_equivalent_command_line_names_benchmark_app_flags(cases: dict[str, Case]) -> None:
    """A job has no command line: the equivalent one has benchmark_app's flags for what ran."""
    for name in ("detailed_json", "sync_json"):
        case = cases[name]
        theirs = json.loads(case.theirs["benchmark_report.json"])
        given = [key for key in theirs["cmd_options"] if key != "-report_folder"]
        ours = report_formats.equivalent_command_line(case.result, case.report_type, "json")
        assert [key for key, _ in ours] == given
        for key, value in ours:
            if key != "-m":
                assert value == theirs["cmd_options"][key], key
        assert dict(ours)["-m"] == "tiny_cnn.xml"


# ------------------------------------------------------------------ pure conversions


def test_parse_command_line_is_benchmark_apps() -> None:
    argv = ["-m", "a.xml", "-pc", "-niter=10", "-json_stats", "-shape", "[1,3,8,8]", "-d", "CPU"]
    assert report_formats.parse_command_line(argv) == [
        ("-m", "a.xml"),
        ("-pc", ""),
        ("-niter", "10"),
        ("-json_stats", ""),
        ("-shape", "[1,3,8,8]"),
        ("-d", "CPU"),
    ]


def test_report_values_round_as_benchmark_app_and_counters_need_counters(
    cases: dict[str, Case],
) -> None:
    result = cases["sync_csv"].result.model_copy(deep=True)
    assert result.latency_ms is not None
    result.latency_ms.mean = 0.004567
    result.throughput_fps = 1234.5678
    sections = report_formats.statistics_sections(result, [])
    execution = dict(sections.execution)
    assert execution["avg latency"] == "0.00" and execution["throughput"] == "1234.57"
    with pytest.raises(ValueError, match="perf_counters"):
        report_formats.counters_report(result, "average_counters", "csv")
    result.perf_counters = [
        PerfCounter(
            node_name="conv",
            node_type="Convolution",
            exec_type="jit",
            status="EXECUTED",
            real_time_ms=0.0126,
            cpu_time_ms=0.5,
        )
    ]
    text = report_formats.counters_report(result, "average_counters", "csv").text
    assert text.split("\n") == [
        "layerName;execStatus;layerType;execType;realTime (ms);cpuTime (ms)",
        "conv;Status.EXECUTED;Convolution;jit;0.013;0.500",
        "Total;;;;0.013;0.500",
        "",
        "",
    ]


def _counter(name: str, real_time_ms: float, cpu_time_ms: float) -> PerfCounter:
    return PerfCounter(
        node_name=name,
        node_type="Convolution",
        exec_type="jit",
        status="EXECUTED",
        real_time_ms=real_time_ms,
        cpu_time_ms=cpu_time_ms,
    )


def test_detailed_counters_write_each_request_and_old_results_their_average(
    cases: dict[str, Case],
) -> None:
    result = cases["sync_csv"].result.model_copy(deep=True)
    result.perf_counters_per_request = [
        [_counter("conv", 1.0, 2.0), _counter("fc", 0.25, 0.5)],
        [_counter("conv", 3.0, 4.0), _counter("fc", 0.75, 1.5)],
    ]
    result.perf_counters = [_counter("conv", 2.0, 3.0), _counter("fc", 0.5, 1.0)]
    header = "layerName;execStatus;layerType;execType;realTime (ms);cpuTime (ms)"
    detailed = report_formats.counters_report(result, "detailed_counters", "csv").text
    assert detailed.split("\n") == [
        header,
        "conv;Status.EXECUTED;Convolution;jit;1.000;2.000",
        "fc;Status.EXECUTED;Convolution;jit;0.250;0.500",
        "Total;;;;1.250;2.500",
        "",
        header,
        "conv;Status.EXECUTED;Convolution;jit;3.000;4.000",
        "fc;Status.EXECUTED;Convolution;jit;0.750;1.500",
        "Total;;;;3.750;5.500",
        "",
        "",
    ]
    body = json.loads(report_formats.counters_report(result, "detailed_counters", "json").text)
    assert body["report_type"] == "detailed"
    blocks = body["detailed_performance"]
    assert [b["total_real_time"] for b in blocks] == ["1.250", "3.750"]
    assert [b["total_cpu_time"] for b in blocks] == ["2.500", "5.500"]
    assert [n["real_time"] for n in blocks[1]["nodes"]] == ["3.000", "0.750"]
    # The average report is the average, whatever the requests hold.
    average = report_formats.counters_report(result, "average_counters", "csv").text
    assert average.split("\n")[1:4] == [
        "conv;Status.EXECUTED;Convolution;jit;2.000;3.000",
        "fc;Status.EXECUTED;Convolution;jit;0.500;1.000",
        "Total;;;;2.500;4.000",
    ]
    average_json = json.loads(
        report_formats.counters_report(result, "average_counters", "json").text
    )
    assert average_json["avg_performance"]["total_real_time"] == "2.500"

    # A result stored before ovbench kept each request's counters: one block, the average.
    old = BenchmarkResult.model_validate(
        {k: v for k, v in result.model_dump().items() if k != "perf_counters_per_request"}
    )
    assert old.perf_counters_per_request is None
    assert report_formats.counters_report(old, "detailed_counters", "csv").text == average
    old_json = json.loads(report_formats.counters_report(old, "detailed_counters", "json").text)
    assert [b["total_real_time"] for b in old_json["detailed_performance"]] == ["2.500"]


def test_flat_row_keeps_full_precision_with_units_in_the_names(cases: dict[str, Case]) -> None:
    result = cases["average_csv"].result
    text = report_formats.csv_table(FLAT_COLUMNS, [report_formats.flat_row(result)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and tuple(rows[0]) == FLAT_COLUMNS
    row = rows[0]
    assert result.latency_ms is not None
    assert float(row["latency_median_ms"]) == result.latency_ms.median
    assert float(row["latency_p99_ms"]) == result.latency_ms.p99
    assert float(row["throughput_fps"]) == result.throughput_fps
    assert float(row["compile_ms"]) == result.compile_ms
    assert int(row["iterations"]) == 20 and int(row["nireq"]) == 2
    assert row["device"] == "CPU" and row["api"] == "async"
    assert result.provenance is not None
    assert row["model_sha256"] == result.provenance.model_sha256
    assert row["stability_verdict"] == (result.stability.verdict if result.stability else "")
    # Every column but the ones a run may leave empty is filled.
    optional = {"nthreads", "hint", "inference_precision", "stability_verdict", "hostname"}
    assert [c for c in FLAT_COLUMNS if not row[c] and c not in optional] == []
