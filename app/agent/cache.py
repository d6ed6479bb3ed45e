"""The agent's file cache: model and input files by sha256, verified, with a size cap.

`<cache_dir>/blobs/<sha[:2]>/<sha>`; a file enters only after its size and sha256 matched
what the API's job manifest says (downloaded to a temporary name, then renamed), so a
truncated or tampered download is never used. Before a job runs, its files are linked into
`<cache_dir>/jobs/<job id>/{model,inputs}/` under the names the engine expects; that
directory goes when the job ends. When the cache passes `max_bytes`, the least recently used
files that the current job does not need are deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

Fetch = Callable[[str, int, Path], None]  # (sha256, size, destination)


class CacheTooSmall(Exception):
    pass


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.jobs = root / "jobs"
        self.max_bytes = max_bytes
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.jobs.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blobs / sha256[:2] / sha256

    def ensure(self, files: Iterable[tuple[str, int]], fetch: Fetch) -> None:
        """Every (sha256, size) in the cache, fetched when missing; then trim the cache."""
        wanted = list(dict.fromkeys(files))
        total = sum(size for _, size in wanted)
        if total > self.max_bytes:
            raise CacheTooSmall(
                f"the job's files take {total} bytes, more than the agent's cache cap of "
                f"{self.max_bytes} (--cache-max-bytes / OVBENCH_AGENT_CACHE_MAX_BYTES)"
            )
        for sha256, size in wanted:
            path = self.path_for(sha256)
            if path.is_file() and path.stat().st_size == size:
                os.utime(path)  # most recently used
                self.hits += 1
                continue
            self.misses += 1
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{sha256}.{uuid.uuid4().hex}.part")
            try:
                fetch(sha256, size, partial)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        self.trim(keep={sha for sha, _ in wanted})

    def trim(self, keep: set[str]) -> int:
        """Delete least recently used files until the cache fits; returns how many went."""
        entries = []
        for path in self.blobs.glob("*/*"):
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        used = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if used <= self.max_bytes:
                break
            if path.name in keep:
                continue
            path.unlink(missing_ok=True)
            used -= size
            removed += 1
        if removed:
            logger.info("cache: removed %d least recently used file(s)", removed)
        return removed

    def job_dir(self, job_id: str, model: dict[str, str], inputs: dict[str, str]) -> Path:
        """`jobs/<id>/model/<name>` and `jobs/<id>/inputs/<name>` linked to cached blobs."""
        root = self.jobs / job_id
        shutil.rmtree(root, ignore_errors=True)
        for sub, files in (("model", model), ("inputs", inputs)):
            directory = root / sub
            directory.mkdir(parents=True)
            for name, sha256 in files.items():
                if "/" in name or name in ("", ".", ".."):
                    raise ValueError(f"unsafe file name {name!r}")
                try:
                    os.link(self.path_for(sha256), directory / name)
                except OSError:
                    shutil.copyfile(self.path_for(sha256), directory / name)
        return root

    def drop_job_dir(self, job_id: str) -> None:
        shutil.rmtree(self.jobs / job_id, ignore_errors=True)
