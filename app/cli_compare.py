"""`ovbench compare BASELINE CANDIDATE`: two results, candidate against baseline.

Each side is a saved result (`ovbench run --json > a.json`, or a job's JSON from the API), or
a job id on a server (`--server URL`, or OVBENCH_SERVER; `--token` or OVBENCH_TOKEN), where
`GET /compare` does the work. Prints a table of the metrics (ratio, 95% interval, method,
verdict), what differs between the two runs, and the verdict; `--json` prints the comparison.
Exit status: 0, or 1 with `--fail-on-regression` when the verdict is regressed (for CI);
2 for bad arguments or unreadable results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from app.cli_rerun import read_json
from app.engine.compare import Comparison, compare
from app.engine.spec import BenchmarkResult

SERVER_ENV = "OVBENCH_SERVER"
TOKEN_ENV = "OVBENCH_TOKEN"


class CompareError(Exception):
    """A side cannot be read; the message says which and why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovbench compare",
        description="Compare two benchmark results: per-metric ratio, 95%% interval and verdict.",
    )
    parser.add_argument("baseline", help="A saved result (.json) or a job id on --server")
    parser.add_argument("candidate", help="A saved result (.json) or a job id on --server")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.02,
        help="Smallest relative change counted as improved or regressed. Default: 0.02 (2%%).",
    )
    parser.add_argument("--server", help=f"The service's URL for job ids (or {SERVER_ENV})")
    parser.add_argument("--token", help=f"Bearer token for the server (or {TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="Print the comparison as JSON")
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="Exit with status 1 when the verdict is regressed",
    )
    return parser


def load_saved(path: Path) -> BenchmarkResult:
    """A result from a file: a BenchmarkResult, or a job (its `result`)."""
    data = read_json(path, CompareError)
    if isinstance(data, dict) and "throughput_fps" not in data and "result" in data:
        if not isinstance(data["result"], dict):
            raise CompareError(f"{path} is a job with no result (status {data.get('status')})")
        data = data["result"]
    try:
        return BenchmarkResult.model_validate(data)
    except ValueError as exc:
        raise CompareError(f"{path} is not a benchmark result: {exc}") from exc


def _from_server(args: argparse.Namespace) -> Comparison:
    from app.client import ApiError, Client

    server = args.server or os.environ.get(SERVER_ENV)
    if not server:
        raise CompareError(
            f"{args.baseline!r} and {args.candidate!r} are not files: to compare jobs by id, "
            f"give the server with --server URL (or {SERVER_ENV})"
        )
    try:
        with Client(server, args.token or os.environ.get(TOKEN_ENV), timeout_s=60) as client:
            return client.compare(args.baseline, args.candidate, args.threshold)
    except ValueError as exc:  # not an http(s) URL
        raise CompareError(str(exc)) from exc
    except ApiError as exc:
        if exc.status is None:
            raise CompareError(f"Cannot reach {server}: {exc.message}") from exc
        raise CompareError(f"{server} answered {exc.status}: {exc.message}") from exc


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_comparison(comparison: Comparison, baseline: str, candidate: str) -> None:
    print(
        f"[ INFO ] Compare: candidate {candidate} against baseline {baseline} "
        f"(threshold {comparison.threshold:.1%})"
    )
    print(
        f"{'metric':<20} {'baseline':>12} {'candidate':>12} {'ratio':>8} "
        f"{'95% interval':>17}  {'verdict':<10} method"
    )
    for metric in comparison.metrics:
        interval = (
            f"[{metric.ci_low:.3f}, {metric.ci_high:.3f}]"
            if metric.ci_low is not None and metric.ci_high is not None
            else "-"
        )
        print(
            f"{metric.metric:<20} {_number(metric.baseline):>12} {_number(metric.candidate):>12} "
            f"{_number(metric.ratio, 3):>8} {interval:>17}  {metric.verdict:<10} {metric.method}"
        )
    for difference in comparison.differences:
        print(
            f"[ INFO ] Differs: {difference.field}: {difference.baseline!r} -> "
            f"{difference.candidate!r}"
        )
    for note in comparison.notes:
        print(f"[ WARNING ] {note}")
    print(f"[BENCHMARK RESULT] Verdict: {comparison.verdict}")


def compare_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if not 0 <= args.threshold < 1:
        print("[ ERROR ] --threshold must be in [0, 1), e.g. 0.02 for 2%", file=sys.stderr)
        return 2
    sides = [Path(args.baseline), Path(args.candidate)]
    try:
        if all(side.is_file() for side in sides):
            baseline, candidate = (load_saved(side) for side in sides)
            comparison = compare(baseline, candidate, args.threshold)
        elif any(side.is_file() for side in sides):
            raise CompareError(
                "Give two saved results or two job ids, not one of each "
                f"({', '.join(str(s) for s in sides if not s.is_file())} is not a file)"
            )
        else:
            comparison = _from_server(args)
    except CompareError as exc:
        print(f"[ ERROR ] {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(comparison.model_dump(mode="json"), indent=2))
    else:
        print_comparison(comparison, args.baseline, args.candidate)
    return 1 if args.fail_on_regression and comparison.verdict == "regressed" else 0
