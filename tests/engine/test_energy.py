"""Energy from RAPL (Linux powercap), on fake powercap trees: every branch, and a real run
whose package counters move while it measures."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine import energy
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkSpec


def _zone(
    root: Path, name: str, energy_uj: int, range_uj: int = 1_000_000, label: str = ""
) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")
    (zone / "name").write_text(f"{label or name}\n")
    return zone


def _set(zone: Path, energy_uj: int) -> None:
    """A new value at once, as sysfs gives it (never a half-written file)."""
    staged = zone / ".energy_uj.new"
    staged.write_text(f"{energy_uj}\n")
    os.replace(staged, zone / "energy_uj")


def test_packages_are_summed_sub_zones_are_not_and_a_wrap_is_undone(tmp_path: Path) -> None:
    p0 = _zone(tmp_path, "intel-rapl:0", 900_000, range_uj=1_000_000, label="package-0")
    p1 = _zone(tmp_path, "intel-rapl:1", 5_000_000, range_uj=10_000_000, label="package-1")
    core = _zone(tmp_path, "intel-rapl:0:0", 100, label="core")  # a part of package 0
    _zone(tmp_path, "intel-rapl-mmio:0", 0)  # another view of package 0 on some Intel CPUs
    start = energy.sample(tmp_path)
    _set(p0, 100_000)  # wrapped: 900,000 -> 1,000,000 -> 100,000 is 200,000 uJ
    _set(p1, 6_000_000)  # 1,000,000 uJ
    _set(core, 10_000_000)
    end = energy.sample(tmp_path)
    used = energy.usage(start, end, inferences=400)
    assert used.measured and used.reason is None
    assert used.zones == ["package-0", "package-1"]
    assert used.joules == pytest.approx(1.2)
    assert used.millijoules_per_inference == pytest.approx(3.0)
    assert used.average_watts == pytest.approx(1.2 / (end.wall_s - start.wall_s))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda root: None, "is not present"),
        (lambda root: _zone(root, "intel-rapl:0:0", 5), "no RAPL package zones"),
        (
            lambda root: (_zone(root, "intel-rapl:0", 5) / "energy_uj").write_text("x"),
            "cannot read",
        ),
    ],
)
def test_what_cannot_be_read_is_unavailable_with_the_reason(
    tmp_path: Path, make: object, reason: str
) -> None:
    root = tmp_path / "powercap"
    if reason != "is not present":
        root.mkdir()
    make(root)  # type: ignore[operator]
    used = energy.usage(energy.sample(root), energy.sample(root), inferences=10)
    assert not used.measured and reason in (used.reason or "")
    assert used.joules is None and used.average_watts is None


def test_a_root_only_counter_says_so_and_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every file is readable, so refuse the read the way the kernel does for users.
    zone = _zone(tmp_path, "intel-rapl:0", 5)
    real_read = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self == zone / "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    used = energy.usage(energy.sample(tmp_path), energy.sample(tmp_path), 1)
    assert not used.measured
    assert "readable by root only" in (used.reason or "") and "udev" in (used.reason or "")


@pytest.fixture
def moving_counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake package whose counter climbs 1 J every 10 ms while the test runs."""
    zone = _zone(tmp_path, "intel-rapl:0", 0, range_uj=2**40, label="package-0")
    monkeypatch.setenv(energy.ROOT_ENV, str(tmp_path))
    stop = threading.Event()

    def climb() -> None:
        value = 0
        while not stop.wait(0.01):
            value += 1_000_000
            _set(zone, value)

    thread = threading.Thread(target=climb, daemon=True)
    thread.start()
    yield zone
    stop.set()
    thread.join()


def test_a_real_run_reports_the_energy_of_its_measured_loop(
    tiny_model: Path, moving_counters: Path
) -> None:
    result = run_benchmark(
        BenchmarkSpec(model_path=str(tiny_model), device="CPU", api="sync", duration_s=1)
    )
    used = result.energy
    assert used is not None and used.measured and used.zones == ["package-0"]
    # About 100 W (1 J per 10 ms) over the measured second, not the compile before it.
    assert used.average_watts is not None and 50 < used.average_watts < 150
    assert used.joules is not None and 0.5 < used.joules < 1.5 * result.duration_ms / 1000 * 100
    assert used.millijoules_per_inference == pytest.approx(used.joules * 1000 / result.iterations)


def test_without_powercap_a_run_says_energy_is_unavailable(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(energy.ROOT_ENV, str(tmp_path / "none"))
    result = run_benchmark(BenchmarkSpec(model_path=str(tiny_model), device="CPU", niter=5))
    assert result.energy is not None and not result.energy.measured
    assert "is not present" in (result.energy.reason or "")


def test_ovbench_run_prints_the_energy_or_why_not(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli import main

    monkeypatch.setenv(energy.ROOT_ENV, str(tmp_path / "none"))
    assert main(["run", "-m", str(tiny_model), "-niter", "5"]) == 0
    printed = capsys.readouterr()
    lines = (printed.out + printed.err).splitlines()
    assert any(
        line.startswith("[ INFO ] CPU package energy: unavailable (no RAPL energy counters:")
        for line in lines
    ), lines
