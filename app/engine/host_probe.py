"""What the host is, for a result's provenance: CPU model, cores, the ISA extensions that
change OpenVINO's CPU plugin choices, kernel, OS, cpufreq policy, memory, container, and the
OV_*/OMP_*/KMP_*/TBB_* variables, read from Linux's /proc, /sys and /etc.

Nothing here raises on a strange host: a field that cannot be read is null (or, for the
fields the contract makes required, a fallback such as platform's answer) and
`unavailable[field]` says why, naming the path.

`OVBENCH_HOST_ROOT` (read at call time) points the reader at another filesystem root; tests
use a fake tree. `logical_cpus` is `os.cpu_count()` on the real root (the count the CPU
accounting divides by), and the number of "processor" entries of the root's cpuinfo under
another root (that host's CPUs, not this one's).
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Mapping
from pathlib import Path

from app.engine.integrity import HostProvenance

ROOT_ENV = "OVBENCH_HOST_ROOT"
ENV_PREFIXES = ("OV_", "OMP_", "KMP_", "TBB_")
# Flags that change the CPU plugin's kernels and precisions; every avx512* and amx_* counts.
_ISA_FLAGS = frozenset({"avx", "avx2", "avx_vnni", "f16c", "fma", "sse4_2"})
_ISA_PREFIXES = ("avx512", "amx_")
# In /proc/1/cgroup, first match wins (kubepods paths often name docker or containerd too).
_CGROUP_MARKERS = (
    ("kubepods", "kubernetes"),
    ("docker", "docker"),
    ("libpod", "podman"),
    ("lxc", "lxc"),
)
_CPUFREQ = Path("sys/devices/system/cpu/cpu0/cpufreq")
_NO_CPUFREQ = (
    "no cpufreq driver (a virtual machine, or frequency scaling left to the firmware or disabled)"
)


def host_root() -> Path:
    """The filesystem root the host is read under: OVBENCH_HOST_ROOT, else /."""
    return Path(os.environ.get(ROOT_ENV) or "/")


def cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per processor (key: value lines, blocks split by blank lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def _is_real_root(root: Path) -> bool:
    try:
        return root.resolve() == Path("/")
    except OSError:
        return False


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _has_flags(block: dict[str, str]) -> bool:
    return "flags" in block or "Features" in block


def _exists(path: Path, directory: bool = False) -> bool:
    try:
        return path.is_dir() if directory else path.exists()
    except OSError:
        return False


def _why(path: Path, exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path} is not present"
    return f"cannot read {path}: {exc}"


class _Probe:
    """Collects the fields and the reasons for those it cannot read."""

    def __init__(self, root: Path, environ: Mapping[str, str]) -> None:
        self.root = root
        self.real = _is_real_root(root)
        self.environ = environ
        self.unavailable: dict[str, str] = {}

    def text(self, relative: str | Path, *fields: str) -> str | None:
        """A file's text, or None with the reason noted against `fields`."""
        path = self.root / relative
        try:
            return _read(path)
        except (OSError, ValueError) as exc:
            for name in fields:
                self.unavailable.setdefault(name, _why(path, exc))
            return None

    def probe(self) -> HostProvenance:
        cpuinfo_path = self.root / "proc/cpuinfo"
        text = self.text("proc/cpuinfo", "cpu_model", "physical_cores", "isa_flags")
        blocks = cpuinfo_blocks(text) if text is not None else []
        if text is not None and not blocks:
            for name in ("cpu_model", "physical_cores", "isa_flags"):
                self.unavailable[name] = f"{cpuinfo_path} lists no processors"
        governor, min_mhz, max_mhz = self.cpufreq()
        return HostProvenance(
            hostname=self.hostname(),
            cpu_model=self.cpu_model(blocks, cpuinfo_path),
            logical_cpus=self.logical_cpus(blocks, cpuinfo_path),
            physical_cores=self.physical_cores(blocks, cpuinfo_path),
            isa_flags=self.isa_flags(blocks, cpuinfo_path),
            kernel=self.kernel(),
            os=self.os_name(),
            cpufreq_governor=governor,
            cpufreq_min_mhz=min_mhz,
            cpufreq_max_mhz=max_mhz,
            memory_bytes=self.memory_bytes(),
            container=self.container(),
            env={k: v for k, v in sorted(self.environ.items()) if k.startswith(ENV_PREFIXES)},
            unavailable=dict(sorted(self.unavailable.items())),
        )

    def hostname(self) -> str:
        try:
            name = socket.gethostname()
        except OSError as exc:
            name, reason = "", f"socket.gethostname() failed: {exc}"
        else:
            reason = "socket.gethostname() returned an empty name"
        if not name:
            self.unavailable["hostname"] = reason
        return name or platform.node() or "unknown"

    def cpu_model(self, blocks: list[dict[str, str]], path: Path) -> str:
        for block in blocks:
            if block.get("model name"):
                return block["model name"]
        if blocks:
            self.unavailable["cpu_model"] = f'{path} has no "model name" line'
        return platform.processor() or platform.machine() or "unknown"

    def logical_cpus(self, blocks: list[dict[str, str]], path: Path) -> int:
        if not self.real:
            count = sum(1 for block in blocks if "processor" in block)
            if count:
                return count
            self.unavailable["logical_cpus"] = (
                f'{path} lists no "processor" entries; this machine\'s os.cpu_count() instead'
            )
        found = os.cpu_count()
        if found is None:
            self.unavailable["logical_cpus"] = "os.cpu_count() cannot tell; 1 assumed"
        return found or 1

    def physical_cores(self, blocks: list[dict[str, str]], path: Path) -> int | None:
        if not blocks:
            return None
        pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "processor" in b}
        if not pairs or any(None in pair for pair in pairs):
            self.unavailable["physical_cores"] = (
                f'{path} does not give every processor a "physical id" and a "core id"'
            )
            return None
        return len(pairs)

    def isa_flags(self, blocks: list[dict[str, str]], path: Path) -> list[str]:
        # x86 says "flags"; Arm says "Features" (nothing there matches the x86 names).
        line = next((b.get("flags", b.get("Features")) for b in blocks if _has_flags(b)), None)
        if line is None:
            if blocks:
                self.unavailable["isa_flags"] = f'{path} has no "flags" line'
            return []
        return sorted({f for f in line.split() if f in _ISA_FLAGS or f.startswith(_ISA_PREFIXES)})

    def kernel(self) -> str:
        if self.real:
            return platform.release()
        text = self.text("proc/sys/kernel/osrelease", "kernel")
        if text and text.strip():
            return text.strip()
        self.unavailable.setdefault("kernel", f"{self.root / 'proc/sys/kernel/osrelease'} is empty")
        return "unknown"

    def os_name(self) -> str:
        text = self.text("etc/os-release", "os")
        for line in (text or "").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "PRETTY_NAME" and value.strip().strip("\"'"):
                self.unavailable.pop("os", None)
                return value.strip().strip("\"'")
        if text is not None:
            self.unavailable["os"] = f"{self.root / 'etc/os-release'} has no PRETTY_NAME"
        self.unavailable["os"] += "; platform.platform() instead"
        return platform.platform()

    def cpufreq(self) -> tuple[str | None, float | None, float | None]:
        names = ("cpufreq_governor", "cpufreq_min_mhz", "cpufreq_max_mhz")
        folder = self.root / _CPUFREQ
        if not _exists(folder, directory=True):
            for name in names:
                self.unavailable[name] = f"{folder} is not present: {_NO_CPUFREQ}"
            return None, None, None
        governor = self.text(_CPUFREQ / "scaling_governor", names[0])
        governor = governor.strip() if governor else None
        if governor == "":
            self.unavailable[names[0]] = f"{folder / 'scaling_governor'} is empty"
            governor = None
        return (
            governor,
            self._mhz("cpuinfo_min_freq", names[1]),
            self._mhz("cpuinfo_max_freq", names[2]),
        )

    def _mhz(self, file: str, field: str) -> float | None:
        text = self.text(_CPUFREQ / file, field)
        if text is None:
            return None
        try:
            return int(text.strip()) / 1000  # kHz
        except ValueError:
            self.unavailable[field] = (
                f"{self.root / _CPUFREQ / file} holds {text.strip()[:40]!r}, not kHz"
            )
            return None

    def memory_bytes(self) -> int | None:
        path = self.root / "proc/meminfo"
        text = self.text("proc/meminfo", "memory_bytes")
        for line in (text or "").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "MemTotal":
                parts = value.split()
                if parts and parts[0].isdigit():
                    unit = parts[1].lower() if len(parts) > 1 else "kb"
                    return int(parts[0]) * (1024 if unit == "kb" else 1)
        if text is not None:
            self.unavailable["memory_bytes"] = f"{path} has no MemTotal line in kB"
        return None

    def container(self) -> str | None:
        if _exists(self.root / ".dockerenv"):
            return "docker"
        if _exists(self.root / "run/.containerenv"):
            return "podman"
        if self.environ.get("KUBERNETES_SERVICE_HOST"):
            return "kubernetes"
        try:
            cgroup = _read(self.root / "proc/1/cgroup")
        except (OSError, ValueError):
            cgroup = ""
        for marker, name in _CGROUP_MARKERS:
            if marker in cgroup:
                return name
        return self.environ.get("container") or None


def probe_host(
    root: Path | None = None, environ: Mapping[str, str] | None = None
) -> HostProvenance:
    """The host's provenance, read under `root` (default: OVBENCH_HOST_ROOT, else /)."""
    probe = _Probe(root or host_root(), os.environ if environ is None else environ)
    return probe.probe()
