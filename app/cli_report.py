"""`ovbench run`'s text report: the seed's lines, then the figures benchmark_app prints and
what ovbench adds (host CPU, energy, repeats, steady state, the verdict, the host guard and
the outputs check), in benchmark_app's `[ INFO ]` style."""

from __future__ import annotations

from app.engine.spec import BenchmarkResult


def print_report(result: BenchmarkResult) -> None:
    """The seed's lines, then the figures benchmark_app prints and a few more."""
    info = print
    info(
        f"[ INFO ] Device: {result.device} ({result.device_full_name}), OpenVINO {result.openvino_version}"
    )
    cfg = result.config
    info(
        f"[ INFO ] Compiled with: hint {cfg.hint}, {cfg.nstreams} streams, {cfg.nireq} requests, "
        f"{cfg.nthreads} threads, inference precision {cfg.inference_precision}, batch {cfg.batch_size}"
    )
    info(f"[ INFO ] Count: {result.iterations} iterations, duration {result.duration_ms:.2f} ms")
    if result.latency_ms is not None:
        lat = result.latency_ms
        info(
            f"[ INFO ] Latency ms: median {lat.median:.4f}, mean {lat.mean:.4f}, min {lat.min:.4f}, "
            f"max {lat.max:.4f}, p90 {lat.p90:.4f}, p95 {lat.p95:.4f}, p99 {lat.p99:.4f}"
        )
        if lat.percentile != 50:
            info(f"[ INFO ] Latency p{lat.percentile}: {lat.at_percentile:.4f} ms")
    if (cpu := result.cpu_usage) is not None:
        benchmark_s, other, steal = cpu.benchmark_cpu_s, cpu.other_fraction, cpu.steal_fraction
        if cpu.measured and benchmark_s is not None and other is not None and steal is not None:
            info(
                f"[ INFO ] Host CPU during the run: benchmark {benchmark_s:.2f} CPU-s, "
                f"other processes {other:.1%}, steal {steal:.1%} of {cpu.logical_cpus} CPUs"
            )
        else:
            info(
                f"[ INFO ] Host CPU during the run: not measured ({cpu.reason}); "
                f"the host has {cpu.logical_cpus} logical CPUs"
            )
    if (used := result.energy) is not None:
        if used.measured and used.joules is not None:
            per = used.millijoules_per_inference
            info(
                f"[ INFO ] CPU package energy during the run: {used.joules:.3f} J, "
                f"{used.average_watts or 0.0:.2f} W average"
                + (f", {per:.4f} mJ per inference" if per is not None else "")
                + f" ({', '.join(used.zones)})"
            )
        else:
            info(f"[ INFO ] CPU package energy: unavailable ({used.reason})")
    if result.status == "cancelled":
        info("[ WARNING ] The run was cancelled; the figures cover the part that ran.")
    if result.api == "sync" and result.latency_ms is not None:
        info(f"[BENCHMARK RESULT] Latency is {result.latency_ms.mean:.4f} msec")
    info(f"[BENCHMARK RESULT] Throughput is {result.throughput_fps:.4f} FPS")
