"""`ovbench submit`: `ovbench run`'s options, measured by an ovbench server (app.client).

    ovbench submit --server http://lab:8000 -m model.xml -i images/ -d CPU -api async -t 10

- **Server.** `--server URL` or `OVBENCH_SERVER`; `--token T` or `OVBENCH_TOKEN` when the
  server has API tokens. No server is a usage error (exit 2).
- **Options.** `ovbench run`'s parser and option names; each run option given
  (`engine.defaults.RUN_OPTIONS`) becomes the JobCreate field of the same name, the others
  take the server's defaults (its default duration for the device, ...). Every other `run`
  option (`-c`, `-l`, `-cache_dir`, `--from-result`, the host guard's, the report files') is
  a usage error naming the option, and is left out of `--help`.
- **Uploads.** Only what the server does not have: the model is looked up by the sha256 the
  server would give it, the inputs by their files' digests (`Client.find_model`,
  `Client.find_dataset`); a line says which was reused and which uploaded.
- **Waiting.** A progress bar on stderr (iterations, FPS) when stdout and stderr are
  terminals; then `ovbench run`'s `[ INFO ]` and `[BENCHMARK RESULT]` lines, or with `--json`
  the job's JSON (stdout holds only that; the other lines go to stderr). `--no-wait` prints
  the job id (with `--json`, the queued job) and exits 0.
- **Ctrl-C** while waiting: with a terminal on stdin, asks whether to cancel the job (Enter:
  cancel; n: leave it running, `ovbench show ID` reads it later). Without one (a script, CI)
  the job is cancelled: nobody can answer, and a job left behind would hold the shared device
  host; submit with `--no-wait` to leave jobs running on purpose. Exit 130 either way.
- **Exit status.** 0 succeeded; 1 failed or cancelled on the server (`[ ERROR ] code:
  message`), or the server refused or could not be reached; 2 usage (options, local files,
  no server); 130 interrupted.

`ovbench jobs`, `show` and `cancel` are in app.cli_remote_jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.cli import _run_parser
from app.cli_report import print_report
from app.engine.defaults import RUN_OPTIONS

if TYPE_CHECKING:  # app.client loads the wire models (and pydantic) only after parsing
    from app.api.schemas import JobRead
    from app.client import ApiError, Client

SERVER_ENV = "OVBENCH_SERVER"
TOKEN_ENV = "OVBENCH_TOKEN"
INTERRUPTED = 130

# `ovbench run` options that a server does not take from a client, and why.
REFUSED = {
    "gpu_config_path": "the server reads GPU kernel configs by name from its own "
    "OVBENCH_EXTENSIONS_DIR (JobCreate's gpu_config), not from a file here",
    "extension_paths": "the server loads extensions by name from its own "
    "OVBENCH_EXTENSIONS_DIR (JobCreate's extensions), not from files here",
    "cache_dir": "the server keeps its own model cache",
    "from_result": "ovbench run --from-result reruns a saved result here; a server's job "
    "reruns with POST /jobs/{id}/rerun",
    "guard_wait_s": "the server's host guard settings apply (OVBENCH_GUARD__WAIT_S)",
    "guard_sample_s": "the server's host guard settings apply (OVBENCH_GUARD__SAMPLE_S)",
}
_OWN = frozenset({"model", "inputs", "json", "server", "token", "no_wait"})


# ---------------------------------------------------------------------------- shared
def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--server", help=f"The ovbench service's URL, e.g. http://lab:8000 (or {SERVER_ENV})"
    )
    group.add_argument("--token", help=f"Bearer token for the server (or {TOKEN_ENV})")


def connect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Client:
    """The client for --server/OVBENCH_SERVER; a usage error (exit 2) when neither is set."""
    server = args.server or os.environ.get(SERVER_ENV)
    if not server:
        parser.error(f"no server: give --server URL or set {SERVER_ENV}")
    from app.client import Client

    try:
        return Client(server, token=args.token or os.environ.get(TOKEN_ENV))
    except ValueError as exc:
        parser.error(f"{exc} (--server or {SERVER_ENV})")


def print_api_error(exc: ApiError, doing: str) -> None:
    where = f" ({exc.url})" if exc.url and exc.status is not None else ""
    text = f"{exc.code}: {exc.message}" if exc.status is not None else exc.message
    print(f"[ ERROR ] {doing}: {text}{where}", file=sys.stderr)
    if exc.status == 401:
        print(f"[ ERROR ] Give the server's token with --token or {TOKEN_ENV}", file=sys.stderr)


def print_job_json(job: JobRead) -> None:
    print(json.dumps(job.model_dump(mode="json"), indent=2))


def progress_text(job: JobRead) -> str:
    """`42% (1234 iterations, 456.7 FPS, 2.7 s)`: where a running job is."""
    progress = job.progress
    fps = progress.iterations / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
    return (
        f"{progress.fraction:.0%} ({progress.iterations} iterations, {fps:.1f} FPS, "
        f"{progress.elapsed_s:.1f} s)"
    )


def print_outcome(job: JobRead, as_json: bool) -> int:
    """A finished job as `ovbench run` prints a run (or its JSON); its exit status."""
    from app.engine.spec import BenchmarkResult

    if as_json:
        print_job_json(job)
    result = None if job.result is None else BenchmarkResult.model_validate(job.result)
    if result is not None and not as_json:
        for warning in result.warnings:
            print(f"[ WARNING ] {warning}")
        print_report(result)
    if job.status == "succeeded":
        return 0
    if job.status == "failed" and job.error is not None:
        print(f"[ ERROR ] {job.error.code}: {job.error.message}", file=sys.stderr)
    else:
        reason = f" ({job.error.code}: {job.error.message})" if job.error else ""
        print(f"[ ERROR ] Job {job.id} was {job.status}{reason}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------- submit
def _submit_parser() -> argparse.ArgumentParser:
    parser = _run_parser("ovbench submit")
    parser.description = (
        "Benchmark a model on an ovbench server: ovbench run's options, the server's devices. "
        "Uploads only the files the server does not have, waits with a progress bar and "
        "prints ovbench run's report."
    )
    for action in parser._actions:
        if action.dest not in _OWN and action.dest not in RUN_OPTIONS and action.dest != "help":
            action.help = argparse.SUPPRESS  # refused with a usage error (`_job_fields`)
        elif action.dest == "model":
            action.help = "Required. Path to the model: .xml (its .bin beside it), .onnx, ..."
        elif action.dest == "json":
            action.help = "Print the job (with its result) as JSON instead of the report."
    add_server_options(parser)
    parser.add_argument_group("server").add_argument(
        "--no-wait",
        dest="no_wait",
        action="store_true",
        help="Print the job's id once it is queued, and exit 0 (--json: the queued job).",
    )
    return parser


def _given(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """The dests the command line gives (at their default value too), in the parser's order."""
    bare = _submit_parser()
    for action in bare._actions:
        action.default = argparse.SUPPRESS
    given = vars(bare.parse_args(argv))
    return [a.dest for a in parser._actions if a.dest in given]


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return "/".join(action.option_strings)
    return dest


def _job_fields(
    args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]
) -> dict[str, Any]:
    """The JobCreate fields the command line gives; usage errors (exit 2) for the others."""
    from pydantic import ValidationError

    from app.api.schemas import JobCreate

    given = _given(parser, argv)
    for dest in given:
        if dest in REFUSED:
            parser.error(f"{_flag(parser, dest)} is not for a server: {REFUSED[dest]}")
        if dest not in _OWN and dest not in RUN_OPTIONS:
            parser.error(
                f"{_flag(parser, dest)} is for ovbench run only: the service does not take it"
            )
    if args.model is None:
        parser.error("the following arguments are required: -m/--path_to_model")
    fields = {dest: getattr(args, dest) for dest in given if dest not in _OWN}
    try:
        JobCreate.model_validate({"model_id": "checked-before-upload", **fields})
    except ValidationError as exc:
        problems = "; ".join(
            f"{_flag(parser, str(error['loc'][0]))}: {error['msg']}"
            if error["loc"]
            else error["msg"]
            for error in exc.errors()
        )
        parser.error(problems)
    return fields


def _info_stream(args: argparse.Namespace) -> TextIO:
    """Where the `[ INFO ]` lines go: stderr when stdout is for JSON or the job id."""
    return sys.stderr if args.json or args.no_wait else sys.stdout


def upload_model_and_inputs(
    client: Client, args: argparse.Namespace, out: TextIO
) -> tuple[str, str | None]:
    """(model_id, dataset_id), uploading only what the server lacks. OSError/ValueError for
    local files, ApiError from the server."""
    from app.client import content

    model_paths = content.model_paths(Path(args.model))
    inputs = content.input_paths([Path(p) for p in args.inputs])
    shown = Path(args.model).name
    model = client.find_model(model_paths)
    if model is not None:
        print(f"[ INFO ] Model: {shown} is model {model.id} on the server (same sha256)", file=out)
    else:
        model = client.upload_model(model_paths, check_first=False)
        print(
            f"[ INFO ] Model: uploaded {shown} as model {model.id} ({model.size_bytes} bytes)",
            file=out,
        )
    if not inputs:
        return model.id, None
    dataset = client.find_dataset(inputs)
    if dataset is not None:
        print(
            f"[ INFO ] Inputs: {len(inputs)} files are dataset {dataset.id} on the server "
            "(same files)",
            file=out,
        )
    else:
        dataset = client.upload_dataset(inputs, check_first=False)
        print(f"[ INFO ] Inputs: uploaded {len(inputs)} files as dataset {dataset.id}", file=out)
    return model.id, dataset.id


class _ProgressBar:
    """tqdm on stderr while the job runs, when stdout and stderr are terminals; else quiet.

    `Job ID: running, 1234 iterations, 456.7 FPS, 2.7 s  45%|████      |`
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.bar: Any = None
        if sys.stdout.isatty() and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=100,
                file=sys.stderr,
                bar_format="{desc} {percentage:3.0f}%|{bar}|",
                desc=f"Job {job_id}: queued",
                leave=False,
                dynamic_ncols=True,
            )

    def update(self, job: JobRead) -> None:
        if self.bar is None:
            return
        if job.status == "queued":
            where = f" (position {job.queue_position})" if job.queue_position else ""
            text = f"queued{where}"
        else:
            progress = job.progress
            fps = progress.iterations / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
            text = (
                f"{job.status}, {progress.iterations} iterations, {fps:.1f} FPS, "
                f"{progress.elapsed_s:.1f} s"
            )
            self.bar.n = min(100.0, progress.fraction * 100)
        self.bar.set_description_str(f"Job {self.job_id}: {text}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _ask_to_cancel(job_id: str) -> bool:
    """Whether to cancel after Ctrl-C: asked on a terminal (Enter, a second Ctrl-C or EOF:
    cancel), else yes (see the module docstring)."""
    if not sys.stdin.isatty():
        return True
    try:
        sys.stderr.write(f"\nCancel job {job_id} on the server? [Y/n] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return True
    return answer.strip().lower() not in ("n", "no")


def _interrupted(client: Client, job_id: str, out: TextIO) -> int:
    from app.client import ApiError

    if not _ask_to_cancel(job_id):
        print(f"[ INFO ] Job {job_id} left running: ovbench show {job_id}", file=out)
        return INTERRUPTED
    try:
        job = client.cancel(job_id)
    except ApiError as exc:
        if exc.status == 409:  # it finished meanwhile
            print(f"[ INFO ] Job {job_id} had finished: ovbench show {job_id}", file=out)
        else:
            print_api_error(exc, f"Cancelling job {job_id}")
        return INTERRUPTED
    print(f"[ INFO ] Job {job_id} cancelled ({job.status} now)", file=sys.stderr)
    return INTERRUPTED


def submit_main(argv: Sequence[str]) -> int:
    parser = _submit_parser()
    args = parser.parse_args(argv)
    fields = _job_fields(args, parser, argv)
    client = connect(args, parser)
    from app.client import ApiError

    out = _info_stream(args)
    job_id: str | None = None
    stage = "Uploading"
    with client:
        try:
            try:
                model_id, dataset_id = upload_model_and_inputs(client, args, out)
            except (OSError, ValueError) as exc:
                print(f"[ ERROR ] {exc}", file=sys.stderr)
                return 2
            stage = "Submitting the job"
            job = client.submit_job({"model_id": model_id, "dataset_id": dataset_id, **fields})
            job_id = job.id
            stage = f"Waiting for job {job_id}"
            where = f", position {job.queue_position}" if job.queue_position else ""
            print(f"[ INFO ] Job {job.id} queued on {client.base_url}{where}", file=out)
            if args.no_wait:
                if args.json:
                    print_job_json(job)
                else:
                    print(job.id)
                return 0
            bar = _ProgressBar(job.id)
            try:
                job = client.wait_job(job.id, on_progress=bar.update)
            finally:
                bar.close()
        except ApiError as exc:
            print_api_error(exc, stage)
            return 1
        except KeyboardInterrupt:
            if job_id is None:
                print("[ ERROR ] Interrupted before the job was queued", file=sys.stderr)
                return INTERRUPTED
            return _interrupted(client, job_id, out)
    return print_outcome(job, args.json)
