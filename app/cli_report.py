"""`ovbench run`'s text report: the seed's lines, then the figures benchmark_app prints and
what ovbench adds (host CPU, energy, repeats, steady state, the verdict, the host guard and
the outputs check), in benchmark_app's `[ INFO ]` style."""

from __future__ import annotations

from app.engine.integrity import Spread, Trace
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
    for line in trust_lines(result):
        info(line)
    if result.status == "cancelled":
        info("[ WARNING ] The run was cancelled; the figures cover the part that ran.")
    if result.api == "sync" and result.latency_ms is not None:
        info(f"[BENCHMARK RESULT] Latency is {result.latency_ms.mean:.4f} msec")
    info(f"[BENCHMARK RESULT] Throughput is {result.throughput_fps:.4f} FPS")


def _spread(spread: Spread, unit: str) -> str:
    text = (
        f"{spread.median:.4f} {unit} (min {spread.min:.4f}, max {spread.max:.4f}, "
        f"CV {spread.cv:.2%})"
    )
    if spread.ci_low is not None and spread.ci_high is not None and spread.confidence:
        text += (
            f", {spread.confidence:.2%} interval of the median "
            f"[{spread.ci_low:.4f}, {spread.ci_high:.4f}]"
        )
    return text


def _trace(trace: Trace, unit: str) -> str:
    if not trace.available or not trace.per_second:
        return f"unavailable ({trace.reason})"
    return f"{min(trace.per_second):.0f}-{max(trace.per_second):.0f} {unit} ({trace.source})"


def trust_lines(result: BenchmarkResult) -> list[str]:
    """The repeats, steady state, verdict, host guard and outputs check, one line each."""
    lines = []
    if (repeats := result.aggregate) is not None:
        lines.append(
            f"[ INFO ] Repeats: {repeats.repeats} runs; median throughput "
            f"{_spread(repeats.throughput_fps, 'FPS')}; the figures above are run "
            f"{repeats.median_run + 1}'s (the median run)"
        )
        if repeats.latency_median_ms is not None:
            lines.append(
                f"[ INFO ] Repeats: median latency {_spread(repeats.latency_median_ms, 'ms')}"
            )
    if (steady := result.steady_state) is not None:
        if steady.reached and steady.throughput_fps is not None:
            latency = (
                f", median latency {steady.latency_median_ms:.4f} ms"
                if steady.latency_median_ms is not None
                else ""
            )
            lines.append(
                f"[ INFO ] Steady state: after {steady.warmup_s:g} s of warm-up, "
                f"{steady.throughput_fps:.4f} FPS over {steady.seconds} s{latency}"
            )
        else:
            lines.append(f"[ INFO ] Steady state: not reached. {steady.warning or steady.rule}")
    if (stability := result.stability) is not None:
        reasons = f": {' '.join(stability.reasons)}" if stability.reasons else ""
        lines.append(f"[ INFO ] Stability: {stability.verdict}{reasons}")
    if (guard := result.host_guard) is not None:
        before = (
            f"other processes {guard.other_fraction:.1%} of the CPUs before the run"
            if guard.other_fraction is not None
            else "CPU share before the run not measured"
        )
        waited = f", waited {guard.waited_s:.1f} s" if guard.waited_s else ""
        lines.append(
            f"[ INFO ] Host: {before}{waited}; CPU frequency "
            f"{_trace(guard.frequency_mhz, 'MHz')}; temperature "
            f"{_trace(guard.temperature_c, 'C')}" + ("; throttled" if guard.throttled else "")
        )
    if (checked := result.outputs) is not None:
        for out in checked.outputs:
            figures = (
                f"min {out.min:.6g}, max {out.max:.6g}, mean {out.mean:.6g}"
                if out.min is not None and out.max is not None and out.mean is not None
                else "empty"
            )
            top = f", top-5 {out.top5[0]}" if out.top5 else ""
            lines.append(
                f"[ INFO ] Output {out.name} {out.shape} {out.element_type}: {figures}, "
                f"NaN {out.nan_count}, Inf {out.inf_count}{top}"
            )
        for compared in checked.compared:
            state = "matches" if compared.match else "does NOT match"
            errors = (
                f" (max abs error {compared.max_abs_error:.3g}, max rel error "
                f"{compared.max_rel_error:.3g}"
                if compared.max_abs_error is not None and compared.max_rel_error is not None
                else " ("
            )
            lines.append(
                f"[ INFO ] Output {compared.name} {state} {compared.expected_file}{errors}"
                f"{'; ' if errors != ' (' else ''}rtol {checked.rtol:g}, atol {checked.atol:g})"
                + (f": {compared.reason}" if compared.reason else "")
            )
    return lines
