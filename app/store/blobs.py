"""Content-addressed files: `<data_dir>/blobs/ab/cdef...`, named by their sha256.

Uploads are written in chunks to a staging file in `<data_dir>/tmp` (same filesystem, so
the final rename is atomic), hashed while writing, size-limited, fsynced, and only then
renamed to their hashed name. No client-supplied path is ever used on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from app.errors import PayloadTooLargeError

logger = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedFile:
    """One file being uploaded: a temp file in the data dir, hashed as it is written."""

    def __init__(self, path: Path, max_bytes: int, filename: str, field: str) -> None:
        self.path = path
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


class BlobStore:
    """Files under their sha256, plus the per-model and per-dataset directories built from them."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
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
        return StagedFile(self.tmp_dir / f"upload-{uuid.uuid4().hex}", max_bytes, filename, field)

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
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, final)
        _fsync_dir(final.parent)
        return final

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(sha256).unlink()

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
