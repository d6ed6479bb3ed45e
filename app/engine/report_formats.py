"""A `BenchmarkResult` as benchmark_app's report files, and as one flat CSV row (pure).

benchmark_app's `-report_type` files (openvino/tools/benchmark/utils/statistics_report.py,
filled by its main.py), reproduced field for field so that scrapers written for them read
ovbench results unchanged:

- the statistics report, `benchmark_report.csv` (`key;value` lines under the titles
  "Command line parameters", "Configuration setup" and "Execution results", a blank line
  after each) or with `-json_stats` `benchmark_report.json` (`cmd_options`,
  `configuration_setup`, `execution_results`: every value a string but `inference_only`);
- with `average_counters` / `detailed_counters`, the per-layer counters,
  `benchmark_<report_type>_report.csv|json`, times in ms with 3 decimals.

Values are formatted as benchmark_app formats them (times with 2 decimals: a 0.004 ms
latency reads 0.00, as there). Where ovbench knows less or differently:
- `topology` is the model's name (benchmark_app writes OpenVINO's internal unique name,
  e.g. Model1); `inference_only` is True (ovbench fills the inputs before the loop);
- the detailed report has one block per infer request, as benchmark_app's, from
  `BenchmarkResult.perf_counters_per_request` (each request's last inference); results
  stored before ovbench kept those have only the average, `perf_counters`, and their
  detailed report has one block, that average. The average report lists every node
  (benchmark_app's JSON average report lists only the first, a bug in its
  JsonStatisticsReport).

The flat row (`flat_row`, `FLAT_COLUMNS`) is ovbench's own: units in the column names and
numbers at full precision.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from app.engine.spec import (
    OPTION_NAMES,
    VIRTUAL_DEVICES,
    BenchmarkResult,
    PerfCounter,
)

ReportType = Literal["no_counters", "average_counters", "detailed_counters"]
ReportLayout = Literal["csv", "json"]
REPORT_TYPES: tuple[ReportType, ...] = get_args(ReportType)
COUNTER_REPORT_TYPES: tuple[ReportType, ...] = ("average_counters", "detailed_counters")
MEDIA_TYPES: dict[ReportLayout, str] = {"csv": "text/csv", "json": "application/json"}

# benchmark_app's section titles (CSV) and keys (JSON), in its order.
SECTION_TITLES = ("Command line parameters", "Configuration setup", "Execution results")
JSON_SECTION_KEYS = ("cmd_options", "configuration_setup", "execution_results")
CSV_SEPARATOR = ";"
COUNTERS_HEADER = (
    "layerName",
    "execStatus",
    "layerType",
    "execType",
    "realTime (ms)",
    "cpuTime (ms)",
)
# Run options with a benchmark_app flag of the same meaning, in the order a command names them.
_EQUIVALENT_FLAGS = (
    "nstreams",
    "nthreads",
    "batch",
    "pin",
    "hint",
    "shape",
    "data_shape",
    "layout",
    "infer_precision",
)

Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class ReportFile:
    """One file benchmark_app would write: its name in the report folder, and its text."""

    name: str
    text: str
    layout: ReportLayout

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.layout]


@dataclass(frozen=True)
class StatisticsSections:
    """The statistics report's three sections, as benchmark_app's (key, value) lists."""

    command_line: Pairs
    configuration: list[tuple[str, str | bool]]
    execution: Pairs


def statistics_file_name(layout: ReportLayout) -> str:
    return f"benchmark_report.{layout}"


def counters_file_name(report_type: ReportType, layout: ReportLayout) -> str:
    return f"benchmark_{report_type}_report.{layout}"


# ---------------------------------------------------------------- command line parameters


def parse_command_line(argv: Sequence[str]) -> Pairs:
    """benchmark_app's `get_command_line_arguments`: (flag, value) as typed, `-pc` -> ('-pc', '')."""
    pairs: Pairs = []
    name, value = "", ""
    for arg in argv:
        if "=" in arg:
            if name:
                pairs.append((name, value))
            key, _, val = arg.partition("=")
            pairs.append((key, val))
            name, value = "", ""
        elif arg.startswith("-"):
            if name:
                pairs.append((name, value))
                value = ""
            name = arg
        else:
            value = arg
    if name:
        pairs.append((name, value))
    return pairs


def _flag(option: str) -> str:
    return OPTION_NAMES[option][0]


def equivalent_command_line(
    result: BenchmarkResult, report_type: ReportType, layout: ReportLayout
) -> Pairs:
    """The benchmark_app command line that asks for what this result's run did.

    For results without a command line of their own (the service's jobs): the model's file
    name, `-d`, `-api` and the run's limits always (benchmark_app's defaults differ from
    ovbench's: async, and the device's optimal number of requests), `-hint none` where
    ovbench chose it for tuning options, every other option the run was given that
    benchmark_app takes, and `-report_type` (and `-json_stats`) as asked. Options only
    ovbench has (repeats, rtol, rgb ...) and server paths are left out.
    """
    given: dict[str, Any] = dict(result.provenance.spec) if result.provenance else {}
    model_file = Path(str(given.get("model_path") or result.model.files[0].name)).name
    pairs: Pairs = [("-m", model_file)]
    if result.provenance is not None and result.provenance.input_files:
        pairs.append((_flag("input_paths"), " ".join(sorted(result.provenance.input_files))))
    pairs += [(_flag("device"), result.device), (_flag("api"), result.api)]
    niter, duration_s = result.limits.get("niter"), result.limits.get("duration_s")
    if niter is not None:
        pairs.append((_flag("niter"), str(int(niter))))
    if duration_s is not None:
        pairs.append((_flag("duration_s"), f"{float(duration_s):g}"))
    if result.api == "async":
        pairs.append((_flag("nireq"), str(result.config.nireq)))
    tuning = [given.get(name) for name in ("nstreams", "nthreads", "pin")]
    if given.get("hint") is None and any(tuning):
        given["hint"] = "none"  # what ovbench applies; benchmark_app refuses them without it
    for option in _EQUIVALENT_FLAGS:
        if given.get(option) is not None:
            pairs.append((_flag(option), str(given[option])))
    for path in given.get("extension_paths") or []:
        pairs.append((_flag("extension_paths"), Path(path).name))
    if given.get("gpu_config_path"):
        pairs.append((_flag("gpu_config_path"), Path(given["gpu_config_path"]).name))
    percentile = result.latency_ms.percentile if result.latency_ms else None
    if percentile is not None and percentile != 50:
        pairs.append((_flag("latency_percentile"), str(percentile)))
    if given.get("perf_counters") or result.perf_counters is not None:
        pairs.append((_flag("perf_counters"), ""))
    pairs.append(("-report_type", report_type))
    if layout == "json":
        pairs.append(("-json_stats", ""))
    return pairs


# ---------------------------------------------------------------- statistics report


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _streams_line(result: BenchmarkResult) -> list[tuple[str, str | bool]]:
    """benchmark_app's `number of <DEVICE> streams`: only when the streams were set."""
    device = result.device
    if device.partition(":")[0] in VIRTUAL_DEVICES or result.config.nstreams is None:
        return []
    if "NUM_STREAMS" not in result.config.requested:
        return []
    device_type = device.split(".", 1)[0].split("(", 1)[0]
    return [(f"number of {device_type} streams", str(result.config.nstreams))]


def statistics_sections(result: BenchmarkResult, command_line: Pairs) -> StatisticsSections:
    """What benchmark_app's main.py adds to each section, from the result."""
    niter = result.limits.get("niter")
    duration_s = result.limits.get("duration_s")
    duration_ms = 0.0 if duration_s is None else float(duration_s) * 1000
    configuration: list[tuple[str, str | bool]] = [
        ("topology", result.model.name),
        ("target device", result.device),
        ("API", result.api),
        ("inference_only", True),
        ("precision", "UNSPECIFIED"),
        ("batch size", str(result.config.batch_size)),
        ("number of iterations", str(None if niter is None else int(niter))),
        ("number of parallel infer requests", str(result.config.nireq)),
        ("duration (ms)", str(int(duration_ms)) if duration_ms.is_integer() else str(duration_ms)),
        *_streams_line(result),
    ]
    execution: Pairs = [("read model time (ms)", _ms(result.read_model_ms))]
    if result.reshape_ms is not None:
        execution.append(("reshape model time (ms)", _ms(result.reshape_ms)))
    execution += [
        ("compile model time (ms)", _ms(result.compile_ms)),
        ("first inference time (ms)", _ms(result.first_inference_ms)),
        ("total execution time (ms)", _ms(result.duration_ms)),
        ("total number of iterations", str(result.iterations)),
    ]
    latency = result.latency_ms
    if latency is not None and "MULTI" not in result.device:
        title = (
            "latency (ms)"
            if latency.percentile == 50
            else f"latency ({latency.percentile} percentile) (ms)"
        )
        execution += [
            (title, _ms(latency.at_percentile)),
            ("avg latency", _ms(latency.mean)),
            ("min latency", _ms(latency.min)),
            ("max latency", _ms(latency.max)),
        ]
    execution.append(("throughput", _ms(result.throughput_fps)))
    return StatisticsSections(list(command_line), configuration, execution)


def statistics_report(
    result: BenchmarkResult, command_line: Pairs, layout: ReportLayout
) -> ReportFile:
    """`benchmark_report.csv` or `.json`, byte for byte in benchmark_app's layout."""
    sections = statistics_sections(result, command_line)
    parts: tuple[Sequence[tuple[str, str | bool]], ...] = (
        sections.command_line,
        sections.configuration,
        sections.execution,
    )
    if layout == "json":
        body = {key: dict(pairs) for key, pairs in zip(JSON_SECTION_KEYS, parts, strict=True)}
        return ReportFile(statistics_file_name(layout), json.dumps(body), layout)
    lines: list[str] = []
    for title, pairs in zip(SECTION_TITLES, parts, strict=True):
        lines.append(title)
        lines += [f"{key}{CSV_SEPARATOR}{value}" for key, value in pairs]
        lines.append("")
    return ReportFile(statistics_file_name(layout), "".join(f"{line}\n" for line in lines), layout)


# ---------------------------------------------------------------- per-layer counters


def _status(counter: PerfCounter) -> str:
    """benchmark_app writes `str(info.status)`: Status.EXECUTED; the result keeps EXECUTED."""
    return counter.status if "." in counter.status else f"Status.{counter.status}"


def _counters_csv_block(counters: Sequence[PerfCounter]) -> str:
    header = CSV_SEPARATOR.join(COUNTERS_HEADER)
    rows = [
        CSV_SEPARATOR.join(
            [
                c.node_name,
                _status(c),
                c.node_type,
                c.exec_type,
                f"{c.real_time_ms:.3f}",
                f"{c.cpu_time_ms:.3f}",
            ]
        )
        for c in counters
    ]
    real = sum(c.real_time_ms for c in counters)
    cpu = sum(c.cpu_time_ms for c in counters)
    total = CSV_SEPARATOR.join(["Total", "", "", "", f"{real:.3f}", f"{cpu:.3f}"])
    return "\n".join([header, *rows, total]) + "\n\n"


def _counters_json_block(counters: Sequence[PerfCounter]) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "name": c.node_name,
                "node_type": c.node_type,
                "status": _status(c),
                "real_time": f"{c.real_time_ms:.3f}",
                "cpu_time": f"{c.cpu_time_ms:.3f}",
                "exec_type": c.exec_type,
            }
            for c in counters
        ],
        "total_real_time": f"{sum(c.real_time_ms for c in counters):.3f}",
        "total_cpu_time": f"{sum(c.cpu_time_ms for c in counters):.3f}",
    }


def detailed_blocks(result: BenchmarkResult) -> list[list[PerfCounter]]:
    """The detailed report's blocks: one per infer request, or, for a result stored before
    ovbench kept each request's counters, the one average it has (empty without counters)."""
    if result.perf_counters_per_request:
        return result.perf_counters_per_request
    return [result.perf_counters] if result.perf_counters else []


def counters_report(
    result: BenchmarkResult, report_type: ReportType, layout: ReportLayout
) -> ReportFile:
    """`benchmark_<report_type>_report.csv|json`. Needs the result's counters (`-pc`)."""
    if report_type not in COUNTER_REPORT_TYPES:
        raise ValueError(f"{report_type} has no counters file; use {COUNTER_REPORT_TYPES}")
    if not result.perf_counters:
        raise ValueError("the result has no per-layer counters (run with perf_counters)")
    blocks = (
        [result.perf_counters] if report_type == "average_counters" else detailed_blocks(result)
    )
    name = counters_file_name(report_type, layout)
    if layout == "csv":
        return ReportFile(name, "".join(_counters_csv_block(b) for b in blocks), layout)
    body: dict[str, Any] = (
        {"report_type": "average", "avg_performance": _counters_json_block(blocks[0])}
        if report_type == "average_counters"
        else {
            "report_type": "detailed",
            "detailed_performance": [_counters_json_block(b) for b in blocks],
        }
    )
    return ReportFile(name, json.dumps(body, indent=4), layout)


def benchmark_app_files(
    result: BenchmarkResult, report_type: ReportType, layout: ReportLayout, command_line: Pairs
) -> list[ReportFile]:
    """Every file benchmark_app writes for `-report_type`, in its order: the counters file
    (when the type has one and the result has counters), then the statistics report."""
    files = []
    if report_type in COUNTER_REPORT_TYPES and result.perf_counters:
        files.append(counters_report(result, report_type, layout))
    files.append(statistics_report(result, command_line, layout))
    return files


# ---------------------------------------------------------------- the flat row

# Units in the names; numbers at full precision; empty cells where the result has nothing.
FLAT_COLUMNS = (
    "started_at",
    "model_name",
    "model_sha256",
    "device",
    "device_full_name",
    "api",
    "nireq",
    "nstreams",
    "nthreads",
    "batch_size",
    "hint",
    "inference_precision",
    "throughput_fps",
    "latency_median_ms",
    "latency_mean_ms",
    "latency_min_ms",
    "latency_max_ms",
    "latency_stdev_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "first_inference_ms",
    "read_model_ms",
    "compile_ms",
    "iterations",
    "duration_ms",
    "repeats",
    "stability_verdict",
    "result_status",
    "openvino_version",
    "ovbench_version",
    "hostname",
)

Cell = str | int | float | None


def _model_sha256(result: BenchmarkResult) -> str | None:
    if result.provenance is not None:
        return result.provenance.model_sha256
    files = result.model.files
    return files[0].sha256 if len(files) == 1 else None


def flat_row(result: BenchmarkResult) -> dict[str, Cell]:
    """The result as one row of `FLAT_COLUMNS`."""
    latency = result.latency_ms
    hostname = result.host.get("hostname")
    row: dict[str, Cell] = {
        "started_at": result.started_at,
        "model_name": result.model.name,
        "model_sha256": _model_sha256(result),
        "device": result.device,
        "device_full_name": result.device_full_name,
        "api": result.api,
        "nireq": result.config.nireq,
        "nstreams": result.config.nstreams,
        "nthreads": result.config.nthreads,
        "batch_size": result.config.batch_size,
        "hint": result.config.hint,
        "inference_precision": result.config.inference_precision,
        "throughput_fps": result.throughput_fps,
        "latency_median_ms": latency.median if latency else None,
        "latency_mean_ms": latency.mean if latency else None,
        "latency_min_ms": latency.min if latency else None,
        "latency_max_ms": latency.max if latency else None,
        "latency_stdev_ms": latency.stdev if latency else None,
        "latency_p90_ms": latency.p90 if latency else None,
        "latency_p95_ms": latency.p95 if latency else None,
        "latency_p99_ms": latency.p99 if latency else None,
        "first_inference_ms": result.first_inference_ms,
        "read_model_ms": result.read_model_ms,
        "compile_ms": result.compile_ms,
        "iterations": result.iterations,
        "duration_ms": result.duration_ms,
        "repeats": max(len(result.runs), 1),
        "stability_verdict": result.stability.verdict if result.stability else None,
        "result_status": result.status,
        "openvino_version": result.openvino_version,
        "ovbench_version": result.ovbench_version,
        "hostname": None if hostname is None else str(hostname),
    }
    return row


def csv_table(columns: Sequence[str], rows: Iterable[Mapping[str, Cell]]) -> str:
    """A header and the rows (comma-separated, `\\n` line ends, empty cells for None);
    floats at full precision (the shortest text that reads back as the same number)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return out.getvalue()
