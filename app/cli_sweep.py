"""`ovbench sweep`: a grid of run options measured here, one point after another, with the
same engine as `ovbench run`; prints a table and the best point (`--json`: the sweep as JSON).

`ovbench sweep -m model.xml -d CPU --grid nireq=1,2,4 nstreams=1,2 --p99-max-ms 30 -t 5`

- **Options.** Every `ovbench run` option sets the base every point shares (except
  `--from-result`); `--grid AXIS=V1,V2 ...` names the swept ones (`app.engine.sweep.SWEEP_AXES`).
  An axis may not be a base option as well. Sweeping `nireq` needs the async API: without
  `-api`, the sweep uses async and says so; `-api sync` with a `nireq` axis is a usage error.
- **The loop.** `app.engine.sweep.decide` says which points run next and which it skips
  (`--strategy search`); each point is one `run_benchmark`, its figures read by `figures_of`,
  and `summarize` names the best one under the constraints.
- **Output.** Points are numbered from 0, as the service numbers them. `[ INFO ]` lines as
  `ovbench run` prints them (one before and one after each point; the engine's warnings once
  each), then the table, the best point (or the closest, with a warning), the notes and the
  wall time. With `--json` stdout holds only the JSON: grid,
  base (the options given, under BenchmarkSpec's names, plus api async when the sweep chose
  it), strategy, objective, constraints, min_gain, status, points, summary, wall_time_s.
- **Exit status.** 0 when a point succeeded (even if none meets the constraints), 1 when none
  did, 2 for bad options, 130 when interrupted (what finished is still printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO, get_args

from app.cli import _SPEC_OPTIONS, _run_parser
from app.cli_sweep_report import figures_line, print_text
from app.engine.errors import EngineError
from app.engine.integrity import HostGuardRules
from app.engine.spec import Api, BenchmarkSpec, Hint, option_name
from app.engine.sweep import (
    DECIDED,
    DEFAULT_MIN_GAIN,
    NUMERIC_AXES,
    SWEEP_AXES,
    Objective,
    PointState,
    Strategy,
    SweepConstraints,
    decide,
    expand,
    figures_of,
    label,
    sweep_status,
    violations,
)
from app.engine.sweep_summary import point_reads, summarize

PROG = "ovbench sweep"
# Constraint flag's dest -> (SweepConstraints field, how the header line says it).
_CONSTRAINTS = {
    "p99_max_ms": ("latency_p99_ms", "p99 at most {:g} ms"),
    "p95_max_ms": ("latency_p95_ms", "p95 at most {:g} ms"),
    "p90_max_ms": ("latency_p90_ms", "p90 at most {:g} ms"),
    "median_max_ms": ("latency_median_ms", "median latency at most {:g} ms"),
    "min_fps": ("throughput_fps", "throughput at least {:g} FPS"),
}
# The sweep's own options: not part of the base every point shares.
_OWN_OPTIONS = frozenset(
    {"grid", "strategy", "objective", "min_gain", "json", "server", "token", *_CONSTRAINTS}
)
# `ovbench run`'s dests that BenchmarkSpec names otherwise.
_SPEC_NAMES = {"model": "model_path", "inputs": "input_paths"}


# ---------------------------------------------------------------------------- options
def _grid_item(text: str) -> tuple[str, list[str | int]]:
    """`nireq=1,2,4` -> ('nireq', [1, 2, 4]); argparse turns the errors into usage errors."""
    axis, sep, listed = text.partition("=")
    axis = axis.strip()
    if not sep or axis not in SWEEP_AXES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give AXIS=V1,V2,... with AXIS one of {', '.join(SWEEP_AXES)}"
        )
    raw = [value.strip() for value in listed.split(",")]
    if not any(raw) or not all(raw):
        raise argparse.ArgumentTypeError(f"{text!r}: an empty value for {axis}")
    values: list[str | int] = [_axis_value(axis, value) for value in raw]
    duplicates = sorted({str(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {axis} lists {', '.join(duplicates)} more than once"
        )
    return axis, values


def _axis_value(axis: str, value: str) -> str | int:
    if axis in NUMERIC_AXES:
        if not value.isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError(
                f"{axis} values are whole numbers of at least 1, not {value!r}"
            )
        return int(value)
    if axis == "nstreams":
        return int(value) if value.isdigit() else value
    choices = {"api": get_args(Api), "hint": get_args(Hint)}.get(axis)
    if choices is not None and value not in choices:
        raise argparse.ArgumentTypeError(f"{axis} values are {', '.join(choices)}, not {value!r}")
    return value


def _number(text: str, zero_allowed: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if zero_allowed and not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    if not zero_allowed and not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _positive(text: str) -> float:
    return _number(text, zero_allowed=False)


def _fraction(text: str) -> float:
    return _number(text, zero_allowed=True)


def _parser() -> argparse.ArgumentParser:
    """`ovbench run`'s parser with the sweep's options (and without --from-result)."""
    parser = _run_parser(PROG)
    parser.description = (
        "Benchmark a model at every point of a grid of run options (the same measurement as "
        "ovbench run), and name the best point under latency and throughput constraints."
    )
    for action in parser._actions:
        if action.dest == "from_result":
            action.help = argparse.SUPPRESS
        elif action.dest == "model":
            action.help = "Required. Path to the model: .xml (with its .bin), .onnx, ..."
        elif action.dest == "json":
            action.help = "Print the sweep (its points and what it found) as JSON."
    group = parser.add_argument_group("sweep")
    add = group.add_argument
    add(
        "--grid",
        dest="grid",
        nargs="+",
        action="extend",
        type=_grid_item,
        required=True,
        metavar="AXIS=V1,V2",
        help=f"Required. The options to sweep and their values, e.g. nireq=1,2,4 nstreams=1,2. "
        f"AXIS: {', '.join(SWEEP_AXES)}; each once, and not also given as a base option.",
    )
    add(
        "--strategy",
        dest="strategy",
        choices=get_args(Strategy),
        default="grid",
        help="grid: run every point; search: along nireq, stop once a latency bound breaks or "
        "throughput stops growing (skipped points say why). Default: grid.",
    )
    add(
        "--objective",
        dest="objective",
        choices=get_args(Objective),
        default="throughput_fps",
        help="What the best point has most of (throughput) or least of (a latency). "
        "Default: throughput_fps.",
    )
    add("--p99-max-ms", dest="p99_max_ms", type=_positive, help="Constraint: p99 at most.")
    add("--p95-max-ms", dest="p95_max_ms", type=_positive, help="Constraint: p95 at most.")
    add("--p90-max-ms", dest="p90_max_ms", type=_positive, help="Constraint: p90 at most.")
    add(
        "--median-max-ms",
        dest="median_max_ms",
        type=_positive,
        help="Constraint: median latency at most.",
    )
    add("--min-fps", dest="min_fps", type=_positive, help="Constraint: throughput at least.")
    add(
        "--min-gain",
        dest="min_gain",
        type=_fraction,
        default=DEFAULT_MIN_GAIN,
        help="Search: the throughput gain (a fraction) a step up in nireq must give for the "
        f"next step to run. Default: {DEFAULT_MIN_GAIN:g}.",
    )
    server = parser.add_argument_group("server (the sweep runs there: ovbench serve)")
    server.add_argument(
        "--server",
        nargs="?",
        const="",
        metavar="URL",
        help="Run the sweep on an ovbench service instead of here: its URL, or OVBENCH_SERVER "
        "when none is given. Uploads only what the server lacks; the server's devices.",
    )
    server.add_argument("--token", help="Bearer token for the server (or OVBENCH_TOKEN)")
    return parser


def _given_options(argv: Sequence[str]) -> list[str]:
    """The dests the command line really gives (at their default value too), in the parser's
    order."""
    bare = _parser()
    for action in bare._actions:
        action.default = argparse.SUPPRESS
    given = vars(bare.parse_args(argv))
    return [a.dest for a in bare._actions if a.dest in given]


def _checked_grid(
    items: list[tuple[str, list[str | int]]],
    given: Sequence[str],
    parser: argparse.ArgumentParser,
) -> dict[str, list[str | int]]:
    """{axis: values} in SWEEP_AXES order, numeric axes ascending; usage errors exit 2."""
    grid: dict[str, list[str | int]] = {}
    for axis, values in items:
        if axis in grid:
            parser.error(f"--grid names {axis} twice: give its values once, {axis}=V1,V2")
        if axis in given:
            parser.error(
                f"{option_name(axis)} and --grid {axis}=... both set {axis}: "
                "drop one (the grid's values are the points')"
            )
        grid[axis] = values
    return {
        axis: sorted(grid[axis], key=int) if axis in NUMERIC_AXES else grid[axis]
        for axis in SWEEP_AXES
        if axis in grid
    }


def _point_spec(base: BenchmarkSpec, values: dict[str, Any]) -> BenchmarkSpec:
    """The base options with the point's values (validated: a ValueError names a bad one)."""
    update = {axis: str(v) if axis == "nstreams" else v for axis, v in values.items()}
    return BenchmarkSpec.model_validate({**base.model_dump(), **update})


# ---------------------------------------------------------------------------- the loop
class _OnceFilter(logging.Filter):
    """The engine's warnings once each: every point repeats most of them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def _result_line(point: PointState, constraints: SweepConstraints) -> str:
    f = point.figures
    assert f is not None
    broken = violations(f, constraints)
    return figures_line(f.throughput_fps, f.latency_median_ms, f.latency_p99_ms, f.verdict, broken)


def _run_points(
    points: list[PointState],
    specs: dict[int, BenchmarkSpec],
    args: argparse.Namespace,
    constraints: SweepConstraints,
    out: TextIO,
) -> tuple[dict[int, str | None], bool]:
    """Run the points as `decide` says until none is pending: ({index: error}, interrupted)."""
    from app.engine.runner import run_benchmark  # openvino loads here, not for -h

    errors: dict[int, str | None] = {}
    by_index = {p.index: p for p in points}
    total = len(points)

    def say(level: str, point: PointState, text: str) -> None:
        where = f"#{point.index} ({point.index + 1} of {total}) {label(point.values)}"
        print(f"[ {level} ] Point {where}: {text}", file=out)
        out.flush()

    try:
        while any(p.status == "pending" for p in points):
            decision = decide(points, args.strategy, constraints, args.min_gain)
            if not decision.queue and not decision.skip:  # decide always moves: a bug if not
                raise RuntimeError("the sweep's search queued and skipped nothing")
            for index, reason in decision.skip.items():
                point = by_index[index]
                point.status, point.skip_reason = "skipped", reason
                say("INFO", point, f"skipped: {reason}")
            for index in decision.queue:
                by_index[index].status = "queued"
            for index in decision.queue:
                point = by_index[index]
                point.status = "running"
                say("INFO", point, "running")
                try:
                    result = run_benchmark(specs[index])
                except EngineError as exc:
                    point.status, errors[index] = "failed", exc.message
                    say("ERROR", point, f"failed: {exc.message}")
                    continue
                point.status = "succeeded"
                point.figures = figures_of(result.model_dump(mode="json"))
                say("INFO", point, _result_line(point, constraints))
    except KeyboardInterrupt:
        for point in points:
            if point.status not in DECIDED:
                point.status = "cancelled"
        return errors, True
    return errors, False


# ---------------------------------------------------------------------------- output
def _constraints_text(args: argparse.Namespace) -> str:
    parts = [
        text.format(value)
        for dest, (_, text) in _CONSTRAINTS.items()
        if (value := getattr(args, dest)) is not None
    ]
    return ", ".join(parts)


# ---------------------------------------------------------------------------- command
def sweep_main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.from_result is not None:
        parser.error("--from-result is for ovbench run: a sweep takes its options from -m ...")
    if args.model is None:
        parser.error("the following arguments are required: -m/--path_to_model")
    given = _given_options(argv)
    grid = _checked_grid(args.grid, given, parser)
    chose_async = False
    if "nireq" in grid and "api" not in grid:
        if "api" in given and args.api == "sync":
            parser.error(
                "-api sync runs one infer request, so every nireq point would be the same run: "
                "give -api async, or sweep the API too (--grid api=sync,async)"
            )
        chose_async = args.api != "async"
        args.api = "async"
    constraints = SweepConstraints(
        **{field: getattr(args, dest) for dest, (field, _) in _CONSTRAINTS.items()}
    )
    # 0-based, as the service numbers a sweep's points (and the summary's `#i` names them)
    points = [PointState(i, values) for i, values in enumerate(expand(grid))]
    try:
        base = BenchmarkSpec(
            model_path=args.model,
            input_paths=args.inputs,
            guard=HostGuardRules(wait_s=args.guard_wait_s, sample_s=args.guard_sample_s),
            **{name: getattr(args, name) for name in _SPEC_OPTIONS},
        )
        specs = {p.index: _point_spec(base, p.values) for p in points}
    except ValueError as exc:
        print(f"[ ERROR ] Invalid options: {exc}", file=sys.stderr)
        return 2

    out = sys.stderr if args.json else sys.stdout
    shown = " × ".join(f"{axis} {', '.join(map(str, values))}" for axis, values in grid.items())
    print(
        f"[ INFO ] Sweep of {len(points)} points: {shown}; strategy {args.strategy}, "
        f"objective {args.objective}",
        file=out,
    )
    if chose_async:
        print("[ INFO ] -api async: nireq is swept, and the sync API runs one request", file=out)
    if constraints_text := _constraints_text(args):
        print(f"[ INFO ] Constraints: {constraints_text}", file=out)
    if args.server is not None:
        from app.cli_sweep_remote import remote_sweep

        return remote_sweep(args, parser, given, grid, constraints, chose_async)

    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("[ %(levelname)s ] %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.addFilter(_OnceFilter())
    engine_logger = logging.getLogger("app.engine")
    engine_logger.addHandler(handler)
    started = time.perf_counter()
    try:
        errors, interrupted = _run_points(points, specs, args, constraints, out)
    finally:
        engine_logger.removeHandler(handler)
    wall_time_s = time.perf_counter() - started
    if interrupted:
        cancelled = sum(p.status == "cancelled" for p in points)
        print(f"[ ERROR ] Interrupted: {cancelled} points cancelled.", file=sys.stderr)

    summary = summarize(points, args.objective, constraints)
    rows = point_reads(points, constraints, summary, {}, errors)
    if args.json:
        base_given = {
            _SPEC_NAMES.get(dest, dest): getattr(args, dest)
            for dest in given
            if dest not in _OWN_OPTIONS
        }
        if chose_async:
            base_given["api"] = "async"
        payload = {
            "grid": grid,
            "base": base_given,
            "strategy": args.strategy,
            "objective": args.objective,
            "constraints": constraints.model_dump(mode="json"),
            "min_gain": args.min_gain,
            "status": sweep_status(points, cancel_requested=interrupted),
            "points": [row.model_dump(mode="json") for row in rows],
            "summary": summary.model_dump(mode="json"),
            "wall_time_s": wall_time_s,
        }
        print(json.dumps(payload, indent=2))
    else:
        figures = [p.figures for p in points if p.figures is not None]
        timing = (
            wall_time_s,
            sum(f.measured_s for f in figures),
            sum(f.setup_s for f in figures),
        )
        print_text(rows, list(grid), summary, timing, interrupted)
    if interrupted:
        return 130
    return 0 if any(p.status == "succeeded" for p in points) else 1
