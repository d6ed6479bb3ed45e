"""The host's provenance: fake root trees for every branch, and the real machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from app.engine import host_probe
from app.engine.host_probe import probe_host

_FLAGS = (
    "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512bw avx512_vnni "
    "avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8 amx_fp16 rdrand hypervisor bmi2 sha_ni"
)


def _cpuinfo(sockets: int, cores: int, threads: int, flags: str = _FLAGS) -> str:
    blocks = []
    processor = 0
    for socket_id in range(sockets):
        for _thread in range(threads):
            for core in range(cores):
                blocks.append(
                    f"processor\t: {processor}\nvendor_id\t: GenuineIntel\n"
                    f"model name\t: Intel(R) Xeon(R) Platinum 8480+\ncpu MHz\t\t: 2000.000\n"
                    f"physical id\t: {socket_id}\ncore id\t\t: {core}\nflags\t\t: {flags}\n"
                )
                processor += 1
    return "\n".join(blocks) + "\n"


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def fake_host(tmp_path: Path) -> Path:
    """Two sockets of 4 cores with hyperthreads: 16 logical CPUs, 8 physical cores."""
    _write(tmp_path, "proc/cpuinfo", _cpuinfo(sockets=2, cores=4, threads=2))
    _write(tmp_path, "proc/meminfo", "MemTotal:       16384 kB\nMemFree:        1024 kB\n")
    _write(tmp_path, "proc/sys/kernel/osrelease", "6.1.0-fake-amd64\n")
    _write(tmp_path, "proc/1/cgroup", "0::/\n")
    freq = "sys/devices/system/cpu/cpu0/cpufreq/"
    _write(tmp_path, freq + "scaling_governor", "performance\n")
    _write(tmp_path, freq + "cpuinfo_min_freq", "800000\n")
    _write(tmp_path, freq + "cpuinfo_max_freq", "3800000\n")
    _write(tmp_path, "etc/os-release", 'NAME="Fake"\nPRETTY_NAME="Fake Linux 42 (test)"\n')
    return tmp_path


def test_a_fake_host_is_read_field_by_field(fake_host: Path) -> None:
    environ = {
        "OV_CPU_VERBOSE": "1",
        "OMP_NUM_THREADS": "4",
        "KMP_AFFINITY": "compact",
        "TBB_MALLOC_USE_HUGE_PAGES": "1",
        "OVBENCH_HOST_ROOT": "/x",  # not an OpenVINO variable, though it starts with OV
        "OPENVINO_LIB": "/opt",
        "PATH": "/usr/bin",
    }
    host = probe_host(fake_host, environ)
    assert host.cpu_model == "Intel(R) Xeon(R) Platinum 8480+"
    assert host.logical_cpus == 16 and host.physical_cores == 8
    assert host.isa_flags == [
        "amx_bf16",
        "amx_fp16",
        "amx_int8",
        "amx_tile",
        "avx",
        "avx2",
        "avx512_bf16",
        "avx512_vnni",
        "avx512bw",
        "avx512f",
        "avx_vnni",
        "f16c",
        "fma",
        "sse4_2",
    ]
    assert host.kernel == "6.1.0-fake-amd64"
    assert host.os == "Fake Linux 42 (test)"
    assert host.cpufreq_governor == "performance"
    assert host.cpufreq_min_mhz == 800.0 and host.cpufreq_max_mhz == 3800.0
    assert host.memory_bytes == 16384 * 1024
    assert host.container is None
    assert host.env == {
        "KMP_AFFINITY": "compact",
        "OMP_NUM_THREADS": "4",
        "OV_CPU_VERBOSE": "1",
        "TBB_MALLOC_USE_HUGE_PAGES": "1",
    }
    assert list(host.env) == sorted(host.env)
    assert host.unavailable == {}


def test_without_hyperthreads_or_core_ids_the_cores_are_counted_or_unavailable(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "proc/cpuinfo", _cpuinfo(sockets=1, cores=6, threads=1))
    assert probe_host(tmp_path, {}).physical_cores == 6

    # An Arm host: no "physical id"/"core id", no "model name", "Features" not "flags".
    arm = "processor\t: 0\nFeatures\t: fp asimd aes\n\nprocessor\t: 1\nFeatures\t: fp asimd aes\n"
    _write(tmp_path, "proc/cpuinfo", arm)
    host = probe_host(tmp_path, {})
    assert host.logical_cpus == 2 and host.physical_cores is None and host.isa_flags == []
    assert '"physical id"' in host.unavailable["physical_cores"]
    assert '"model name"' in host.unavailable["cpu_model"]
    assert str(tmp_path / "proc/cpuinfo") in host.unavailable["cpu_model"]
    assert "isa_flags" not in host.unavailable  # read, and none of them is an x86 flag


@pytest.mark.parametrize(
    ("make", "environ", "container"),
    [
        (lambda root: _write(root, ".dockerenv", ""), {}, "docker"),
        (lambda root: _write(root, "run/.containerenv", ""), {}, "podman"),
        (lambda root: None, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
        (
            lambda root: _write(
                root,
                "proc/1/cgroup",
                "12:cpu:/kubepods/besteffort/pod1/docker-0123abcd.scope\n",
            ),
            {},
            "kubernetes",
        ),
        (lambda root: _write(root, "proc/1/cgroup", "4:memory:/docker/0123abcd\n"), {}, "docker"),
        (lambda root: _write(root, "proc/1/cgroup", "1:name=systemd:/lxc/web\n"), {}, "lxc"),
        (lambda root: None, {"container": "systemd-nspawn"}, "systemd-nspawn"),
        (lambda root: None, {}, None),
    ],
)
def test_the_container_is_named_from_its_traces(
    fake_host: Path, make: object, environ: dict[str, str], container: str | None
) -> None:
    make(fake_host)  # type: ignore[operator]
    assert probe_host(fake_host, environ).container == container


def test_a_host_with_nothing_readable_says_why_for_every_field_and_does_not_raise(
    tmp_path: Path,
) -> None:
    # Directories where files should be, garbage where numbers should be.
    (tmp_path / "proc/cpuinfo").mkdir(parents=True)
    (tmp_path / "etc/os-release").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").mkdir(parents=True)
    _write(tmp_path, "proc/meminfo", "\x00\xff garbage\n")
    freq = "sys/devices/system/cpu/cpu0/cpufreq/"
    _write(tmp_path, freq + "cpuinfo_min_freq", "fast\n")
    (tmp_path / freq / "cpuinfo_max_freq").mkdir()
    (tmp_path / "proc/1/cgroup").mkdir(parents=True)
    host = probe_host(tmp_path, {})
    assert host.physical_cores is None and host.isa_flags == [] and host.memory_bytes is None
    assert host.cpufreq_governor is None
    assert host.cpufreq_min_mhz is None and host.cpufreq_max_mhz is None
    assert host.container is None
    assert host.logical_cpus == os.cpu_count()  # this machine's, and it says so
    reasons = host.unavailable
    cpuinfo = str(tmp_path / "proc/cpuinfo")
    for name in ("cpu_model", "physical_cores", "isa_flags", "logical_cpus"):
        assert cpuinfo in reasons[name], name
    assert "Is a directory" in reasons["cpu_model"]
    assert str(tmp_path / "etc/os-release") in reasons["os"] and host.os == platform.platform()
    assert "kernel" in reasons and host.kernel == "unknown"
    assert "MemTotal" in reasons["memory_bytes"]
    assert "is not present" in reasons["cpufreq_governor"]
    assert "'fast', not kHz" in reasons["cpufreq_min_mhz"]
    assert "cpuinfo_max_freq" in reasons["cpufreq_max_mhz"]


def test_without_cpufreq_the_policy_is_unavailable_with_the_reason(fake_host: Path) -> None:
    folder = fake_host / "sys/devices/system/cpu/cpu0/cpufreq"
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    host = probe_host(fake_host, {})
    assert (host.cpufreq_governor, host.cpufreq_min_mhz, host.cpufreq_max_mhz) == (None,) * 3
    for name in ("cpufreq_governor", "cpufreq_min_mhz", "cpufreq_max_mhz"):
        assert f"{folder} is not present" in host.unavailable[name]
        assert "virtual machine" in host.unavailable[name]


def test_the_root_comes_from_ovbench_host_root_at_call_time(
    fake_host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(host_probe.ROOT_ENV, str(fake_host))
    assert probe_host(environ={}).cpu_model == "Intel(R) Xeon(R) Platinum 8480+"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert probe_host().env == {"OMP_NUM_THREADS": "3"} | {
        k: v for k, v in os.environ.items() if k.startswith(host_probe.ENV_PREFIXES)
    }


def test_the_real_machine_gives_sensible_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(host_probe.ROOT_ENV, raising=False)
    host = probe_host()
    cpuinfo = Path("/proc/cpuinfo").read_text()
    real_flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            real_flags.update(line.partition(":")[2].split())
    assert host.cpu_model and host.cpu_model != "unknown"
    assert host.cpu_model in cpuinfo
    assert host.logical_cpus == os.cpu_count()
    assert host.physical_cores is not None and 1 <= host.physical_cores <= host.logical_cpus
    assert set(host.isa_flags) <= real_flags
    if "avx2" in real_flags:
        assert "avx2" in host.isa_flags
    assert "hypervisor" not in host.isa_flags and "sse2" not in host.isa_flags
    assert host.kernel == platform.release() and host.os
    assert host.memory_bytes is not None and host.memory_bytes > 256 * 2**20
    if not Path("/sys/devices/system/cpu/cpu0/cpufreq").is_dir():
        assert host.cpufreq_governor is None
        assert "cpufreq is not present" in host.unavailable["cpufreq_governor"]
    else:
        assert host.cpufreq_max_mhz is not None and host.cpufreq_max_mhz > 100
    if Path("/.dockerenv").exists():
        assert host.container == "docker"
