"""`ovbench jobs`, `ovbench show ID`, `ovbench cancel ID`: a server's jobs (app.client).

The server comes from `--server URL` or OVBENCH_SERVER, the token from `--token` or
OVBENCH_TOKEN (app.cli_remote). Exit status: 0; 1 when the server refuses or cannot be
reached, and for `show` when the job failed or was cancelled; 2 for usage.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.cli_remote import (
    add_server_options,
    connect,
    print_api_error,
    print_job_json,
    print_outcome,
    progress_text,
    submit_main,
)

if TYPE_CHECKING:
    from app.api.schemas import JobRead

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")  # schemas.JobStatus


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    add_server_options(parser)
    return parser


# ---------------------------------------------------------------------------- jobs
def _row(job: JobRead) -> list[str]:
    from app.engine.spec import BenchmarkResult

    if job.status == "succeeded" and job.result is not None:
        fps = f"{BenchmarkResult.model_validate(job.result).throughput_fps:.1f}"
    elif job.status == "running":
        fps = progress_text(job)
    elif job.status == "queued":
        fps = f"queue position {job.queue_position}" if job.queue_position else "-"
    else:
        fps = job.error.code if job.error is not None else "-"
    return [
        job.id,
        job.status,
        job.resolved_params.device,
        job.resolved_params.api,
        job.model_id,
        job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        fps,
    ]


def table_lines(jobs: Sequence[JobRead]) -> list[str]:
    """Fixed-width lines, a header first: id, status, device, api, model, created (UTC), and
    throughput FPS (succeeded), progress (running), queue position or error code."""
    cells = [["ID", "STATUS", "DEVICE", "API", "MODEL", "CREATED (UTC)", "FPS / PROGRESS"]]
    cells += [_row(job) for job in jobs]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]


def jobs_main(argv: Sequence[str]) -> int:
    parser = _parser("ovbench jobs", "List a server's jobs, newest first.")
    parser.add_argument("--status", choices=JOB_STATUSES, help="Only jobs in this status.")
    parser.add_argument(
        "--limit", type=int, default=20, help="How many jobs (1-1000). Default: 20."
    )
    parser.add_argument("--offset", type=int, default=0, help="Skip this many. Default: 0.")
    args = parser.parse_args(argv)
    if not 1 <= args.limit <= 1000 or args.offset < 0:
        parser.error("--limit is 1 to 1000 and --offset 0 or more")
    from app.client import ApiError

    with connect(args, parser) as client:
        try:
            jobs = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
        except ApiError as exc:
            print_api_error(exc, "Listing jobs")
            return 1
    for line in table_lines(jobs):
        print(line)
    return 0


# ---------------------------------------------------------------------------- show
def show_main(argv: Sequence[str]) -> int:
    parser = _parser(
        "ovbench show",
        "A server's job: the report of a finished one (as ovbench run prints it), else its "
        "status and progress. Exit status 1 when it failed or was cancelled.",
    )
    parser.add_argument("job_id", help="The job's id")
    parser.add_argument("--json", action="store_true", help="Print the job as JSON")
    args = parser.parse_args(argv)
    from app.client import ApiError

    with connect(args, parser) as client:
        try:
            job = client.job(args.job_id)
        except ApiError as exc:
            print_api_error(exc, f"Reading job {args.job_id}")
            return 1
    if job.status in ("queued", "running"):
        if args.json:
            print_job_json(job)
            return 0
        where = f", position {job.queue_position}" if job.queue_position else ""
        state = progress_text(job) if job.status == "running" else f"in the queue{where}"
        print(f"[ INFO ] Job {job.id}: {job.status}, {state}")
        return 0
    if not args.json:
        print(f"[ INFO ] Job {job.id}: {job.status}, model {job.model_id}")
    return print_outcome(job, args.json)


# ---------------------------------------------------------------------------- cancel
def cancel_main(argv: Sequence[str]) -> int:
    parser = _parser(
        "ovbench cancel",
        "Cancel a server's job: a queued one at once, a running one within about 2 s.",
    )
    parser.add_argument("job_id", help="The job's id")
    args = parser.parse_args(argv)
    from app.client import ApiError

    with connect(args, parser) as client:
        try:
            job = client.cancel(args.job_id)
        except ApiError as exc:
            print_api_error(exc, f"Cancelling job {args.job_id}")
            return 1
    if job.status == "cancelled":
        print(f"[ INFO ] Job {job.id}: cancelled")
    else:
        print(f"[ INFO ] Job {job.id}: cancel requested; it stops within about 2 s")
    return 0


# `ovbench <command>` for the commands that talk to a server.
COMMANDS = {"submit": submit_main, "jobs": jobs_main, "show": show_main, "cancel": cancel_main}


def remote_main(command: str, argv: Sequence[str]) -> int:
    return COMMANDS[command](argv)
