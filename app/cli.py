"""`ovbench`: run a benchmark from the shell (`run`), write the sample models, start the service.

`ovbench run` takes the seed demo's options (`-m -i -api -d -niter -nireq -nthreads -b -pin`)
plus modern benchmark_app's, and prints the seed's lines; `--json` prints the result JSON;
`-report_type` writes benchmark_app's report files (engine/report_formats.py). It calls the engine directly, in this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from app import cli_rerun
from app.cli_report import print_report
from app.cli_report_files import check_report_folder, str2bool, write_report_files
from app.engine.defaults import RUN_OPTIONS
from app.engine.errors import EngineError
from app.engine.integrity import HostGuardRules
from app.engine.report_formats import (
    COUNTER_REPORT_TYPES,
    REPORT_TYPES,
)
from app.engine.spec import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    Api,
    BenchmarkSpec,
    Hint,
    Pin,
)

logger = logging.getLogger("ovbench")


def _run_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark a model with OpenVINO: benchmark_app's measurement, JSON results.",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add(
        "-m",
        "--path_to_model",
        dest="model",
        help="Required (unless --from-result names it). Path to the model: .xml (with its .bin), .onnx, ...",
    )
    add(
        "-i",
        "--path_to_images",
        dest="inputs",
        nargs="+",
        action="extend",
        default=[],
        help="Images, folders of images, and .npy files named after non-image inputs. Default: random data.",
    )
    add(
        "-d",
        "--target_device",
        dest="device",
        default="CPU",
        help="CPU, GPU, NPU, AUTO, HETERO:<devices>, MULTI:<devices>. Default: CPU.",
    )
    add(
        "-api",
        "--api_type",
        dest="api",
        choices=get_args(Api),
        default="sync",
        help="sync (latency first, one request) or async (throughput first). Default: sync.",
    )
    add("-niter", "--number_iterations", dest="niter", type=int, help="Number of iterations.")
    add(
        "-t",
        "--time",
        dest="duration_s",
        type=float,
        help="Duration in seconds. Default when -niter is not given either: 60 s for CPU/GPU/NPU, 120 s otherwise.",
    )
    add(
        "-nireq",
        "--number_infer_requests",
        dest="nireq",
        type=int,
        help="Number of infer requests (async). Default: 2.",
    )
    add(
        "-nstreams",
        "--number_streams",
        dest="nstreams",
        help="Number of streams (a number or AUTO).",
    )
    add(
        "-nthreads",
        "--number_threads",
        dest="nthreads",
        type=int,
        help="Number of CPU inference threads.",
    )
    add("-b", "--batch_size", dest="batch", type=int, help="Batch size. Default: from the model.")
    add(
        "-pin",
        "--infer_threads_pinning",
        dest="pin",
        choices=get_args(Pin),
        help="CPU threads pinning.",
    )
    add(
        "-hint",
        "--perf_hint",
        dest="hint",
        choices=get_args(Hint),
        help="Performance hint. Default: latency for sync, throughput for async; none when -nstreams/-nthreads/-pin are set.",
    )
    add(
        "-shape",
        dest="shape",
        help="Reshape the model: '[1,3,224,224]' or 'input[1,3,224,224],other[1,4]'.",
    )
    add(
        "-data_shape",
        dest="data_shape",
        help="Data shape for dynamic inputs, same syntax as -shape.",
    )
    add("-layout", dest="layout", help="Input layout: 'NCHW' or 'input[NHWC],other[NC]'.")
    add(
        "-infer_precision",
        dest="infer_precision",
        help="Inference precision hint, e.g. f32, bf16, f16.",
    )
    add(
        "-c",
        "--path_to_cldnn_config",
        dest="gpu_config_path",
        help="GPU custom kernels config file.",
    )
    add(
        "-l",
        "--path_to_extension",
        dest="extension_paths",
        action="append",
        default=[],
        help="Extension library to load (repeatable).",
    )
    add("-cache_dir", dest="cache_dir", help="Model cache directory.")
    add(
        "-latency_percentile",
        dest="latency_percentile",
        type=int,
        default=50,
        help="Latency percentile to report besides p50/p90/p95/p99 (1-100). Default: 50.",
    )
    add(
        "-pc",
        "--perf_counts",
        dest="perf_counters",
        action="store_true",
        help="Per-layer performance counters in the result.",
    )
    add(
        "--rgb",
        dest="rgb",
        action="store_true",
        help="Feed images as RGB (default: BGR, as the seed).",
    )
    add(
        "--repeats",
        dest="repeats",
        type=int,
        default=1,
        help="Measured runs after one compile, each with the -niter/-t limit; the result adds "
        "their spread and a stability verdict. Default: 1.",
    )
    add(
        "--rtol",
        dest="rtol",
        type=float,
        default=DEFAULT_RTOL,
        help=f"Relative tolerance against expected_<output>.npy among the inputs. Default: {DEFAULT_RTOL:g}.",
    )
    add(
        "--atol",
        dest="atol",
        type=float,
        default=DEFAULT_ATOL,
        help=f"Absolute tolerance against expected_<output>.npy. Default: {DEFAULT_ATOL:g}.",
    )
    add(
        "--guard-wait-s",
        dest="guard_wait_s",
        type=float,
        default=HostGuardRules().wait_s,
        help="How long to wait for a busy host to go quiet before the run (0: do not wait). "
        f"Default: {HostGuardRules().wait_s:g}.",
    )
    add(
        "--guard-sample-s",
        dest="guard_sample_s",
        type=float,
        default=HostGuardRules().sample_s,
        help="How long to sample the host's CPU before the run (reading and compiling count "
        f"towards it; 0: no host guard). Default: {HostGuardRules().sample_s:g}.",
    )
    add(
        "-report_type",
        "--report_type",
        "--report-type",
        dest="report_type",
        choices=REPORT_TYPES,
        metavar="TYPE",
        help="After the run, write benchmark_app's report files: no_counters (the statistics "
        "report benchmark_report.csv), average_counters or detailed_counters (and the per-layer "
        "counters file; turns -pc on).",
    )
    add(
        "-report_folder",
        "--report_folder",
        "--report-folder",
        dest="report_folder",
        default="",
        metavar="DIR",
        help="Folder for the report files (created if missing; checked before the run). "
        "Default: the current directory.",
    )
    add(
        "-json_stats",
        "--json_stats",
        "--json-stats",
        dest="json_stats",
        type=str2bool,
        metavar="BOOL",
        nargs="?",
        const=True,
        default=False,
        help="Write the report files as JSON (benchmark_report.json ...) instead of CSV.",
    )
    add(
        "--from-result",
        dest="from_result",
        type=Path,
        help="Rerun a saved result (ovbench run --json, or a job from the API) with its "
        "resolved options; -m/-i name its files when they are elsewhere here, and other "
        "options given here win.",
    )
    add(
        "--json",
        dest="json",
        action="store_true",
        help="Print the result JSON instead of the text report.",
    )
    return parser


# The run options the API takes too, and the CLI's own: files named by path.
_SPEC_OPTIONS = (*RUN_OPTIONS, "gpu_config_path", "extension_paths", "cache_dir")


def _given_options(argv: Sequence[str], prog: str) -> set[str]:
    """The options the command line really gives (at their default value too)."""
    bare = _run_parser(prog)
    for action in bare._actions:
        action.default = argparse.SUPPRESS
    return set(vars(bare.parse_args(argv)))


def _spec_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser, given: set[str]
) -> BenchmarkSpec:
    guard = HostGuardRules(wait_s=args.guard_wait_s, sample_s=args.guard_sample_s)
    if args.from_result is not None:
        overrides = {name: getattr(args, name) for name in _SPEC_OPTIONS if name in given}
        if given & {"guard_wait_s", "guard_sample_s"}:
            overrides["guard"] = guard
        return cli_rerun.spec_from_result(
            cli_rerun.load_result(args.from_result), overrides, args.model, args.inputs
        )
    if args.model is None:
        parser.error("the following arguments are required: -m/--path_to_model")
    fields = {name: getattr(args, name) for name in _SPEC_OPTIONS}
    return BenchmarkSpec(model_path=args.model, input_paths=args.inputs, guard=guard, **fields)


def run_main(argv: Sequence[str], prog: str = "ovbench run") -> int:
    parser = _run_parser(prog)
    args = parser.parse_args(argv)
    given = _given_options(argv, prog)
    try:
        spec = _spec_from_args(args, parser, given)
    except cli_rerun.FromResultError as exc:
        print(f"[ ERROR ] --from-result: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"[ ERROR ] Invalid options: {exc}", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout  # benchmark_app's [ INFO ] lines
    if args.report_type is None:
        if "report_folder" in given or "json_stats" in given:
            print(
                "[ WARNING ] -report_folder and -json_stats choose where and how -report_type "
                "writes its files: without -report_type no report files are written.",
                file=out,
            )
    else:
        try:
            check_report_folder(args.report_folder)
        except OSError as exc:
            print(
                f"[ ERROR ] -report_folder {args.report_folder!r}: the report files cannot be "
                f"written there ({exc.strerror or exc}). Give a folder you can write to.",
                file=sys.stderr,
            )
            return 2
        if args.report_type in COUNTER_REPORT_TYPES and not spec.perf_counters:
            # benchmark_app turns them on too, with this warning.
            print(
                f"[ WARNING ] Turn on performance counters for {spec.device} device since "
                f"report type is {args.report_type}.",
                file=out,
            )
            spec = spec.model_copy(update={"perf_counters": True})
    from app.engine.runner import run_benchmark  # openvino loads here, not for -h

    # The engine's INFO/WARNING lines in benchmark_app's style; on stderr when stdout is JSON.
    handler = logging.StreamHandler(sys.stderr if args.json else sys.stdout)
    handler.setFormatter(logging.Formatter("[ %(levelname)s ] %(message)s"))
    engine_logger = logging.getLogger("app.engine")
    engine_logger.addHandler(handler)
    engine_logger.setLevel(logging.INFO)
    try:
        result = run_benchmark(spec)
    except EngineError as exc:
        print(f"[ ERROR ] {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[ ERROR ] Interrupted.", file=sys.stderr)
        return 130
    finally:
        engine_logger.removeHandler(handler)
    if args.from_result is not None and result.provenance is not None:
        saved = cli_rerun.load_result(args.from_result)
        changed = cli_rerun.model_changed(saved, result.provenance.model_dump())
        result.warnings.extend(changed)
        for warning in changed:
            print(f"[ WARNING ] {warning}", file=sys.stderr)
    code = 0
    if args.report_type is not None:
        code = write_report_files(result, args, argv, out)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print_report(result)
    return code


def devices_main(argv: Sequence[str]) -> int:
    """`ovbench devices`: what OpenVINO sees on this host (as the worker or an agent reports)."""
    parser = argparse.ArgumentParser(
        prog="ovbench devices", description="List the devices OpenVINO sees on this host."
    )
    parser.add_argument("--json", action="store_true", help="Print them as JSON")
    args = parser.parse_args(argv)
    from app.engine.devices import list_devices

    devices = list_devices()
    if args.json:
        print(json.dumps([d.model_dump() for d in devices], indent=2))
        return 0
    for device in devices:
        print(f"{device.name}: {device.full_name}")
        for key, value in device.properties.items():
            print(f"    {key}: {value}")
    if not devices:
        print("No devices: OpenVINO found no plugin that works here")
        return 1
    return 0


def make_models_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ovbench make-models",
        description="Write the sample models (OpenVINO IR) and sample images (red.png, grey.png, "
        "gradient.png) to feed them.",
    )
    parser.add_argument(
        "out_dir", type=Path, help="Folder to write <name>.xml/.bin and the images into."
    )
    parser.add_argument(
        "--only",
        nargs="+",
        help="Only these models (resnet50, mobilenet_v2, tiny_cnn, vad_dynamic).",
    )
    args = parser.parse_args(argv)
    from app.engine.samples import SAMPLE_MODELS, write_sample_images, write_sample_models

    unknown = set(args.only or []) - set(SAMPLE_MODELS)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(SAMPLE_MODELS)}")
    for name, path in write_sample_models(args.out_dir, args.only).items():
        print(f"{name}: {path}")
    images = write_sample_images(args.out_dir).values()
    print(f"images: {' '.join(str(path) for path in images)}")
    return 0


_COMMANDS = {
    "run": "Benchmark a model here and now (benchmark_app's options).",
    "submit": "Benchmark a model on an ovbench server (run's options; --server URL).",
    "jobs": "List a server's jobs.",
    "show": "A server's job: its report, or its status and progress.",
    "cancel": "Cancel a server's job.",
    "serve": "Start the REST service and its worker.",
    "agent": "Run a fleet API's jobs on this device host (README: Fleet).",
    "devices": "List the devices OpenVINO sees on this host.",
    "compare": "Compare two results (saved files, or job ids on a server).",
    "sweep": "Benchmark a grid of run options here; the best point under constraints.",
    "make-models": "Write the sample models (ResNet-50, MobileNetV2, tiny CNN, a dynamic one) and images.",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="ovbench",
        description="OpenVINO benchmarks: benchmark_app's methodology, as a CLI and a REST service.",
        epilog="\n".join(f"  {name:<12} {text}" for name, text in _COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(_COMMANDS), help=", ".join(_COMMANDS))
    if not argv or argv[0] not in _COMMANDS:
        parser.parse_args(argv[:1])  # prints usage and an error (exit 2), or help for -h
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return run_main(rest)
    if command == "make-models":
        return make_models_main(rest)
    if command == "devices":
        return devices_main(rest)
    if command == "compare":
        from app.cli_compare import compare_main

        return compare_main(rest)
    if command == "sweep":
        from app.cli_sweep import sweep_main

        return sweep_main(rest)
    if command in ("submit", "jobs", "show", "cancel"):
        from app.cli_remote_jobs import remote_main

        return remote_main(command, rest)
    if command == "agent":
        from app.agent.__main__ import main as agent_main

        return agent_main(rest)
    from app.serve import main as serve_main

    return serve_main(rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
