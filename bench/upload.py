"""Upload a 1 GiB file over loopback: MB/s and the API process's peak RSS growth.

The file is a 1 GiB `.npy` array posted to `POST /datasets` (the API streams it to disk in
chunks, hashing as it goes, then fsyncs and renames). RSS of the API process (the `ovbench
serve` process, not its worker) is sampled every 5 ms during the upload.
Targets: >= 200 MB/s; RSS growth < 64 MiB.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _service import Service

MIB = 1024 * 1024


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _write_npy(path: Path, size_bytes: int) -> None:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(size_bytes,))
    array[::4096] = 1  # touch every page so the file is not sparse
    array.flush()
    del array


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ovbench-upload-"))
    speeds, growths = [], []
    with Service(
        data_dir=work / "data", env={"OVBENCH_MAX_UPLOAD_BYTES": str((args.size_mib + 64) * MIB)}
    ) as svc:
        assert svc.proc is not None
        pid = svc.proc.pid
        print(
            f"{'run':>3} {'size MiB':>9} {'seconds':>8} {'MB/s':>8} {'RSS before MiB':>15} {'peak MiB':>9} {'growth MiB':>11}"
        )
        for run in range(1, args.repeats + 1):
            path = work / f"big{run}.npy"  # different content each run: no dedupe shortcut
            _write_npy(path, args.size_mib * MIB - 128)
            with path.open("r+b") as handle:
                handle.seek(-8, 2)
                handle.write(run.to_bytes(8, "little"))
            baseline = _rss_bytes(pid)
            peak = [baseline]
            done = threading.Event()

            def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], _rss_bytes(pid))
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            with path.open("rb") as handle:
                response = svc.client.post(
                    "/datasets", files=[("file", (path.name, handle))], timeout=600
                )
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
            if response.status_code != 201:
                raise RuntimeError(f"upload gave {response.status_code}: {response.text[:500]}")
            size = path.stat().st_size
            speed = size / elapsed / 1e6
            growth = (peak[0] - baseline) / MIB
            speeds.append(speed)
            growths.append(growth)
            print(
                f"{run:>3} {size / MIB:>9.0f} {elapsed:>8.2f} {speed:>8.0f} {baseline / MIB:>15.1f} {peak[0] / MIB:>9.1f} {growth:>11.1f}",
                flush=True,
            )
            path.unlink()
            svc.client.delete(f"/datasets/{response.json()['id']}")
    speed, growth = statistics.median(speeds), max(growths)
    print(
        f"median {speed:.0f} MB/s (target >= 200) {'PASS' if speed >= 200 else 'FAIL'}; "
        f"largest RSS growth {growth:.1f} MiB (target < 64) {'PASS' if growth < 64 else 'FAIL'}"
    )
    return 0 if speed >= 200 and growth < 64 else 1


if __name__ == "__main__":
    sys.exit(main())
