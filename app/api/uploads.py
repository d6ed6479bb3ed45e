"""Streaming multipart parsing: file parts go straight to staging files in the data dir.

Starlette's `request.form()` spools files to the system temp dir (often tmpfs, i.e. RAM)
and then we would copy them again; here every file part is written in chunks to a
`StagedFile` (hashed while written, size-limited, fsynced) and text fields are kept
in memory up to a small limit. Parsing runs in a worker thread, fed ~1 MiB at a time,
so a large upload never blocks the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.errors import (
    BadRequestError,
    InsufficientStorageError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaError,
    ValidationError,
)
from app.store.blobs import BlobStore, StagedFile

logger = logging.getLogger(__name__)

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 10_000
_FEED_BYTES = 1 << 20
# After a file exceeds the limit (or the data dir quota) we keep reading (and dropping) this
# much more of the body so that the client can read the 413/507 instead of a reset connection.
_DRAIN_BYTES = 64 << 20


def client_basename(filename: str) -> str:
    """The last path component of a client-supplied file name (either slash style)."""
    # Control characters (NUL ...) are kept: ingest refuses such names with a 422.
    return PureWindowsPath(PurePosixPath(filename).name).name


@dataclass
class UploadedForm:
    """A parsed multipart body: text fields and staged files, in the order sent."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[StagedFile] = field(default_factory=list)

    def single(self, name: str) -> str | None:
        """The value of a text field sent at most once (422 when repeated)."""
        values = self.fields.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ValidationError(
                f"Form field {name!r} was given {len(values)} times", code="duplicate_field"
            )
        return values[0]

    def discard(self) -> None:
        """Delete every staging file that was not committed to the blob store."""
        for staged in self.files:
            staged.discard()


class _Collector:
    """python-multipart callbacks that route part data to staging files or text fields."""

    def __init__(
        self, blobs: BlobStore, max_file_bytes: int, form: UploadedForm, max_parts: int = MAX_PARTS
    ) -> None:
        self.max_parts = max_parts
        self.blobs = blobs
        self.max_file_bytes = max_file_bytes
        self.form = form
        self._headers: dict[str, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._text: bytearray | None = None
        self._file: StagedFile | None = None
        self.parts = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise PayloadTooLargeError(
                f"Too many parts in the form (more than {self.max_parts})",
                code="too_many_parts",
                details={"max_parts": self.max_parts},
            )
        self._headers = {}
        self._header_field = b""
        self._header_value = b""
        self._text = None
        self._file = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequestError(
                "Every form part needs 'Content-Disposition: form-data; name=...'"
            )
        self._name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            filename = client_basename(options[b"filename"].decode("utf-8", "replace"))
            self._file = self.blobs.stage(self.max_file_bytes, filename=filename, field=self._name)
            self.form.files.append(self._file)
        else:
            self._text = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(memoryview(data)[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise PayloadTooLargeError(
                    f"Form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes",
                    details={"field": self._name},
                )

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.finish()
        elif self._text is not None:
            value = self._text.decode("utf-8", "replace")
            self.form.fields.setdefault(self._name, []).append(value)
        self._file = None
        self._text = None


def is_multipart(request: Request) -> bool:
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    return content_type == b"multipart/form-data"


async def read_multipart(
    request: Request, blobs: BlobStore, max_file_bytes: int, max_parts: int = MAX_PARTS
) -> UploadedForm:
    """Parse a multipart/form-data body, staging files in the data dir as they arrive.

    On any error every staged file is deleted before the error propagates.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaError(
            "Expected a multipart/form-data body (curl -F 'file=@model.xml' ...)",
            details={"content_type": content_type.decode("latin-1")},
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequestError("The multipart/form-data Content-Type has no boundary")
    form = UploadedForm()
    collector = _Collector(blobs, max_file_bytes, form, max_parts)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    pending: list[bytes] = []
    pending_bytes = 0
    stream = request.stream()
    try:
        async for chunk in stream:
            if not chunk:
                continue
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= _FEED_BYTES:
                await run_in_threadpool(parser.write, b"".join(pending))
                pending, pending_bytes = [], 0
        if pending:
            await run_in_threadpool(parser.write, b"".join(pending))
        parser.finalize()
    except (PayloadTooLargeError, InsufficientStorageError):
        form.discard()
        drained = 0
        try:
            async for chunk in stream:
                drained += len(chunk)
                if drained > _DRAIN_BYTES:
                    break
        except Exception:
            pass  # the client went away; the 413 is all we owe it
        raise
    except ServiceError:
        form.discard()
        raise
    except Exception as exc:
        form.discard()
        raise BadRequestError(f"Malformed multipart body: {exc}") from exc
    unfinished = [f.filename for f in form.files if not f.sha256]
    if unfinished:
        form.discard()
        raise BadRequestError(
            "The multipart body ended in the middle of a file", details={"files": unfinished}
        )
    return form


# Parts a model or dataset upload may carry beyond its files (text fields such as `name`).
FORM_FIELD_PARTS = 8


def check_file_count(form: UploadedForm, limit: int, what: str) -> None:
    """413 when a form carries more files than `limit` (a setting)."""
    if len(form.files) > limit:
        raise PayloadTooLargeError(
            f"A {what} takes at most {limit} files; got {len(form.files)}",
            code="too_many_files",
            details={"files": len(form.files), "max_files": limit},
        )
