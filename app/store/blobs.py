"""Content-addressed files: `<data_dir>/blobs/ab/cdef...`, named by their sha256.

Uploads are written in chunks to a staging file in `<data_dir>/tmp` (same filesystem, so
the final rename is atomic), hashed while writing, size-limited, fsynced, and only then
renamed to their hashed name. No client-supplied path is ever used on disk.

With a quota (`max_data_bytes`), every chunk written to a staging file is checked against
what the data dir already holds plus everything being staged: past it the write raises
`InsufficientStorageError` (507) and the staging file is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from app.errors import InsufficientStorageError, PayloadTooLargeError

logger = logging.getLogger(__name__)

# How long a measured data dir size is trusted (commits add to it, deletes invalidate it).
_USAGE_TTL_S = 5.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedFile:
    """One file being uploaded: a temp file in the data dir, hashed as it is written."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        filename: str,
        field: str,
        blobs: BlobStore | None = None,
    ) -> None:
        self.path = path
        self._blobs = blobs
        self.max_bytes = max_bytes
        self.filename = filename
        self.field = field
        self.size_bytes = 0
        self._hasher = hashlib.sha256()
        self._file = open(path, "wb")  # noqa: SIM115 (closed in finish/discard)
        self.sha256 = ""

    def write(self, data: bytes | memoryview) -> None:
        """Append a chunk; raises PayloadTooLargeError past the limit (nothing kept)."""
        self.size_bytes += len(data)
        if self.size_bytes > self.max_bytes:
            self.discard()
            raise PayloadTooLargeError(
                f"File {self.filename!r} is larger than the limit of {self.max_bytes} bytes",
                details={"file": self.filename, "max_upload_bytes": self.max_bytes},
            )
        if self._blobs is not None and self._blobs.max_data_bytes is not None:
            self._blobs.reserve(self, len(data))
        self._hasher.update(data)
        self._file.write(data)

    def finish(self) -> None:
        """Flush and fsync; after this `sha256` is final."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.sha256 = self._hasher.hexdigest()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._blobs is not None:
            self._blobs.release(self)


class BlobStore:
    """Files under their sha256, plus the per-model and per-dataset directories built from them."""

    def __init__(self, data_dir: Path, max_data_bytes: int | None = None) -> None:
        self.data_dir = data_dir
        self.max_data_bytes = max_data_bytes
        self._quota_lock = threading.Lock()
        self._usage: int | None = None  # bytes outside tmp/, measured at _usage_at
        self._usage_at = 0.0
        self._staging: dict[int, int] = {}  # id(StagedFile) -> bytes written so far
        self.blobs_dir = data_dir / "blobs"
        self.tmp_dir = data_dir / "tmp"
        self.models_dir = data_dir / "models"
        self.datasets_dir = data_dir / "datasets"
        for d in (self.blobs_dir, self.tmp_dir, self.models_dir, self.datasets_dir):
            d.mkdir(parents=True, exist_ok=True)

    def clean_tmp(self) -> int:
        """Remove staging files left by a crash. Call before any upload can be in flight."""
        removed = 0
        for entry in self.tmp_dir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def stage(self, max_bytes: int, filename: str = "", field: str = "") -> StagedFile:
        return StagedFile(
            self.tmp_dir / f"upload-{uuid.uuid4().hex}", max_bytes, filename, field, self
        )

    # ----------------------------------------------------------------- quota
    def disk_usage(self) -> int:
        """Bytes in the data dir outside tmp/ (hard links counted once)."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for root, dirs, files in os.walk(self.data_dir):
            if Path(root) == self.data_dir and "tmp" in dirs:
                dirs.remove("tmp")
            for name in files:
                try:
                    st = os.lstat(os.path.join(root, name))
                except FileNotFoundError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    total += st.st_size
        return total

    def _current_usage(self) -> int:
        now = time.monotonic()
        if self._usage is None or now - self._usage_at > _USAGE_TTL_S:
            self._usage, self._usage_at = self.disk_usage(), now
        return self._usage

    def reserve(self, staged: StagedFile, nbytes: int) -> None:
        """Count `nbytes` more for `staged`, or raise 507 (and drop it) past the quota."""
        limit = self.max_data_bytes
        if limit is None:
            return
        with self._quota_lock:
            staging = sum(self._staging.values())
            used = self._current_usage() + staging
            if used + nbytes > limit:
                exceeded = True
            else:
                exceeded = False
                self._staging[id(staged)] = self._staging.get(id(staged), 0) + nbytes
        if exceeded:
            staged.discard()
            raise InsufficientStorageError(
                f"Storing {staged.filename!r} would pass the data dir quota of {limit} bytes "
                f"({used} in use); delete models, datasets or jobs, or raise "
                "OVBENCH_MAX_DATA_BYTES",
                details={"file": staged.filename, "max_data_bytes": limit, "used_bytes": used},
            )

    def release(self, staged: StagedFile, committed_bytes: int = 0) -> None:
        """Stop counting `staged` as staging; `committed_bytes` now live under blobs/."""
        with self._quota_lock:
            self._staging.pop(id(staged), None)
            if self._usage is not None:
                self._usage += committed_bytes

    def _forget_usage(self) -> None:
        with self._quota_lock:
            self._usage = None

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blobs_dir / sha256[:2] / sha256[2:]

    def commit(self, staged: StagedFile) -> Path:
        """Move a finished staging file to its hashed name (or drop it: same content exists)."""
        staged.finish()
        final = self.path_for(staged.sha256)
        if final.exists():
            staged.discard()
            with contextlib.suppress(FileNotFoundError):
                os.utime(final)  # fresh again: a periodic sweep's grace period covers it
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, final)
        _fsync_dir(final.parent)
        self.release(staged, committed_bytes=staged.size_bytes)
        return final

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(sha256).unlink()
        self._forget_usage()

    # ------------------------------------------------------------- retention
    def sweep(
        self,
        keep_shas: Iterable[str],
        model_ids: Iterable[str],
        dataset_ids: Iterable[str],
        grace_s: float = 0.0,
    ) -> int:
        """Remove blobs, model/dataset dirs and staging files not in the keep sets.

        Anything modified less than `grace_s` ago stays. Returns the number of entries removed.
        """
        keep = set(keep_shas)
        cutoff = time.time() - grace_s
        removed = 0

        def old(path: Path) -> bool:
            try:
                return path.lstat().st_mtime <= cutoff
            except FileNotFoundError:
                return False

        for prefix in list(self.blobs_dir.iterdir()):
            if not prefix.is_dir():
                if old(prefix):
                    prefix.unlink(missing_ok=True)
                    removed += 1
                continue
            for blob in list(prefix.iterdir()):
                if prefix.name + blob.name not in keep and old(blob):
                    if blob.is_dir():
                        shutil.rmtree(blob, ignore_errors=True)
                    else:
                        blob.unlink(missing_ok=True)
                    removed += 1
            with contextlib.suppress(OSError):
                prefix.rmdir()  # only when empty
        for parent, ids in (
            (self.models_dir, set(model_ids)),
            (self.datasets_dir, set(dataset_ids)),
        ):
            for entry in list(parent.iterdir()):
                if entry.name not in ids and old(entry):
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
        for entry in list(self.tmp_dir.iterdir()):
            if old(entry):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        if removed:
            self._forget_usage()
        return removed

    def link(self, sha256: str, dest: Path) -> None:
        """Make `dest` show the blob's content: a hard link, or a copy across filesystems."""
        src = self.path_for(sha256)
        dest.unlink(missing_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)

    def model_dir(self, model_id: str) -> Path:
        return self.models_dir / model_id

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.datasets_dir / dataset_id

    def materialise(self, directory: Path, files: dict[str, str]) -> Path:
        """Build `directory` with `{safe name: sha256}` entries (rebuilt if incomplete)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, sha in files.items():
            dest = directory / name
            if not dest.exists():
                self.link(sha, dest)
        return directory

    def remove_dir(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        self._forget_usage()
