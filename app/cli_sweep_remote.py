"""`ovbench sweep --server`: the same sweep, run by an ovbench service (`POST /sweeps`).

The model and inputs are uploaded only when the server lacks them (as `ovbench submit`
does); the sweep's points run as the server's jobs, one at a time on its devices. While it
runs, a line per point as it ends (the same lines as a local sweep); then the same table,
best point, Pareto front and notes, from the server's answer (`--json`: its SweepRead). Ctrl-C
cancels the sweep on the server (its running point within 2 s) and exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.cli_remote import REFUSED, connect, print_api_error, upload_model_and_inputs
from app.cli_sweep_report import figures_line, print_text
from app.engine.defaults import RUN_OPTIONS
from app.engine.sweep import DECIDED, SweepConstraints

if TYPE_CHECKING:
    from app.api.sweep_schemas import SweepRead
    from app.client import Client

POLL_S = 0.5
# The sweep's own options: they become SweepCreate's fields, not a point's.
_SWEEP_OPTIONS = frozenset(
    {"grid", "strategy", "objective", "min_gain", "json", "server", "token", "model", "inputs"}
    | {"p99_max_ms", "p95_max_ms", "p90_max_ms", "median_max_ms", "min_fps"}
)


def _base_fields(
    args: argparse.Namespace, parser: argparse.ArgumentParser, given: Sequence[str]
) -> dict[str, Any]:
    """JobCreate's fields that the command line gives; a usage error for the options only a
    local run has."""
    fields: dict[str, Any] = {}
    for dest in given:
        if dest in _SWEEP_OPTIONS:
            continue
        if dest in REFUSED:
            parser.error(f"{_flag(parser, dest)} is not for a server: {REFUSED[dest]}")
        if dest not in RUN_OPTIONS:
            parser.error(
                f"{_flag(parser, dest)} is for a local sweep only: the service does not take it"
            )
        fields[dest] = getattr(args, dest)
    return fields


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    """`-nireq/--number_infer_requests`: how the command line spells an option."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return "/".join(action.option_strings)
    return dest


def _point_line(read: SweepRead, index: int) -> str:
    point = read.points[index]
    where = f"#{point.index} ({point.index + 1} of {read.progress.points_total}) {point.label}"
    if point.status == "succeeded":
        text = figures_line(
            point.throughput_fps,
            point.latency_median_ms,
            point.latency_p99_ms,
            point.verdict,
            point.violations,
        )
    elif point.status == "skipped":
        text = f"skipped: {point.skip_reason}"
    else:
        text = f"{point.status}" + (f": {point.error}" if point.error else "")
    level = "ERROR" if point.status == "failed" else "INFO"
    return f"[ {level} ] Point {where}: {text}"


def _follow(client: Client, read: SweepRead, out: Any) -> SweepRead:
    """Poll the sweep until it ends, printing each point once it is decided."""
    shown: set[int] = set()
    while True:
        for point in read.points:
            if point.index not in shown and point.status in DECIDED:
                shown.add(point.index)
                print(_point_line(read, point.index), file=out, flush=True)
        if read.status in ("succeeded", "failed", "cancelled"):
            return read
        time.sleep(POLL_S)
        read = client.sweep(read.id)


def remote_sweep(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    given: Sequence[str],
    grid: dict[str, list[Any]],
    constraints: SweepConstraints,
    chose_async: bool,
) -> int:
    from app.client import ApiError

    fields = _base_fields(args, parser, given)
    if chose_async:
        fields["api"] = "async"
    client = connect(args, parser)
    out = sys.stderr if args.json else sys.stdout
    try:
        model_id, dataset_id = upload_model_and_inputs(client, args, out)
        body = {
            **fields,
            "model_id": model_id,
            **({"dataset_id": dataset_id} if dataset_id else {}),
            "grid": grid,
            "strategy": args.strategy,
            "objective": args.objective,
            "constraints": constraints.model_dump(exclude_none=True),
            "min_gain": args.min_gain,
        }
        read = client.create_sweep(body)
    except (OSError, ValueError) as exc:
        print(f"[ ERROR ] {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print_api_error(exc, "Submitting the sweep")
        return 1
    measured = read.estimate.measured_s
    print(
        f"[ INFO ] Sweep {read.id} queued on {client.base_url}: {read.estimate.points} points"
        + (f", about {measured:.0f} s measured" if measured is not None else ""),
        file=out,
    )
    interrupted = False
    try:
        read = _follow(client, read, out)
    except KeyboardInterrupt:
        interrupted = True
        try:
            read = client.cancel_sweep(read.id)
            print(f"[ ERROR ] Interrupted: sweep {read.id} cancelled.", file=sys.stderr)
        except ApiError as exc:
            print_api_error(exc, "Cancelling the sweep")
    except ApiError as exc:
        print_api_error(exc, "Following the sweep")
        return 1
    if args.json:
        print(json.dumps(read.model_dump(mode="json"), indent=2))
    else:
        timing = (read.timing.wall_s, read.timing.measured_s, read.timing.setup_s)
        print_text(read.points, list(grid), read.summary, timing, interrupted)
    if interrupted:
        return 130
    return 0 if any(p.status == "succeeded" for p in read.points) else 1
