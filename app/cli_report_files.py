"""`ovbench run -report_type`: benchmark_app's report files, written after the run
(engine/report_formats.py makes them; this writes them with benchmark_app's lines)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app.engine.report_formats import (
    COUNTER_REPORT_TYPES,
    ReportLayout,
    benchmark_app_files,
    parse_command_line,
)
from app.engine.spec import BenchmarkResult


def str2bool(text: str) -> bool:
    """benchmark_app's flags that take an optional boolean: `-json_stats`, `-json_stats false`."""
    if text.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if text.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got {text!r}")


def check_report_folder(folder: str) -> None:
    """Create the report folder and make sure a file can be written there (OSError if not):
    before the run, where benchmark_app finds out after it."""
    path = Path(folder or ".")
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
        pass


def write_report_files(
    result: BenchmarkResult, args: argparse.Namespace, argv: Sequence[str], out: TextIO
) -> int:
    """benchmark_app's report files for `-report_type`, with its `[ INFO ]` lines; 1 when
    they cannot be written (the result is still printed)."""
    layout: ReportLayout = "json" if args.json_stats else "csv"
    files = benchmark_app_files(result, args.report_type, layout, parse_command_line(argv))
    if args.report_type in COUNTER_REPORT_TYPES and not result.perf_counters:
        print("[ INFO ] Performance counters are empty. No reports are dumped.", file=out)
    averaged_only = bool(result.perf_counters) and result.perf_counters_per_request is None
    if args.report_type == "detailed_counters" and result.config.nireq > 1 and averaged_only:
        print(
            f"[ WARNING ] This result keeps each layer's times averaged over the "
            f"{result.config.nireq} infer requests only: the detailed counters report has one "
            "block, their average (benchmark_app writes one per request).",
            file=out,
        )
    for file in files:
        path = os.path.join(args.report_folder, file.name)
        try:
            Path(path).write_text(file.text, encoding="utf-8")
        except OSError as exc:
            print(f"[ ERROR ] Cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        kind = "Statistics" if file.name.startswith("benchmark_report.") else "Performance counters"
        print(f"[ INFO ] {kind} report is stored to {path}", file=out)
    return 0
