"""Turning staged uploads into stored models and datasets.

A model's files get safe canonical names (`model.xml` + `model.bin`, `model.onnx`, ...) and
are read once by OpenVINO to describe its ports; dataset files keep a sanitised version of
their client name (the stem of a `.npy` names the model input it feeds, or, for
`expected_<output name>.npy`, the output it is the reference for; see `engine.outputs`) and
are checked: images must decode, `.npy` files must have a valid header.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import PurePath

import numpy as np

from app.engine.errors import EngineError
from app.engine.inputs import IMAGE_EXTENSIONS, NUMPY_EXTENSIONS, verify_image
from app.engine.model import MODEL_FORMATS, describe_model
from app.errors import UnsupportedMediaError, ValidationError
from app.store import Store
from app.store.blobs import StagedFile
from app.store.tables import DatasetRow, ModelRow, new_id, utcnow

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._:+-]")
MAX_FILENAME_CHARS = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_filenames(staged: list[StagedFile]) -> None:
    """422 for a client file name with control characters, or longer than a file system allows
    (the name is stored as sent)."""
    for f in staged:
        if _CONTROL.search(f.filename):
            raise ValidationError(
                f"File name {f.filename[:80]!r} contains control characters (NUL ...)",
                code="invalid_filename",
            )
        if len(f.filename) > MAX_FILENAME_CHARS:
            raise ValidationError(
                f"File name {f.filename[:40]!r}... is {len(f.filename)} characters long; "
                f"the limit is {MAX_FILENAME_CHARS}",
                code="filename_too_long",
                details={"length": len(f.filename), "max_length": MAX_FILENAME_CHARS},
            )


def safe_name(filename: str, fallback: str) -> str:
    """A file name that is safe as a single path component in our directories."""
    name = _UNSAFE.sub("_", filename).lstrip(".")
    return name[:200] or fallback


def _suffix(filename: str) -> str:
    return PurePath(filename).suffix.lower()


def model_content_sha256(files: list[dict[str, object]]) -> str:
    """One hash over the model's files: their canonical names and contents."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: str(f["name"])):
        digest.update(f"{f['name']}\0{f['sha256']}\n".encode())
    return digest.hexdigest()


def _plan_model_files(staged: list[StagedFile]) -> tuple[str, list[tuple[str, StagedFile]]]:
    """(format, [(canonical name, file)]) or a 415/422 naming what is wrong."""
    if not staged:
        raise ValidationError(
            "No model files uploaded. Send the .xml and its .bin, or one .onnx/.tflite/... file",
            code="no_files",
        )
    check_filenames(staged)
    known = ", ".join(sorted(MODEL_FORMATS))
    primaries = [f for f in staged if _suffix(f.filename) in MODEL_FORMATS]
    if not primaries:
        names = [f.filename for f in staged]
        raise UnsupportedMediaError(
            f"None of {names} is a model file OpenVINO reads (known extensions: {known})",
            code="unsupported_model_format",
            details={"files": names},
        )
    if len(primaries) > 1:
        names = [f.filename for f in primaries]
        raise ValidationError(
            f"Upload one model at a time; got {names}",
            code="too_many_models",
            details={"files": names},
        )
    primary = primaries[0]
    suffix = _suffix(primary.filename)
    fmt = MODEL_FORMATS[suffix]
    planned = [(f"model{suffix}", primary)]
    rest = [f for f in staged if f is not primary]
    if fmt == "openvino_ir":
        weights = [f for f in rest if _suffix(f.filename) == ".bin"]
        if len(weights) != 1:
            raise ValidationError(
                f"OpenVINO IR needs exactly one .bin beside {primary.filename!r}; got {len(weights)}. "
                "Upload both: -F file=@model.xml -F file=@model.bin",
                code="ir_weights_missing" if not weights else "too_many_files",
                details={"files": [f.filename for f in staged]},
            )
        planned.append(("model.bin", weights[0]))
        rest = [f for f in rest if f is not weights[0]]
    if rest:
        names = [f.filename for f in rest]
        raise UnsupportedMediaError(
            f"Unexpected files for a {fmt} model: {names}",
            code="unexpected_files",
            details={"files": names},
        )
    return fmt, planned


def ingest_model(store: Store, staged: list[StagedFile], name: str | None) -> tuple[ModelRow, bool]:
    """Store a model from staged files: (row, created). Same content -> existing row."""
    fmt, planned = _plan_model_files(staged)
    for _, f in planned:
        f.finish()
        if f.size_bytes == 0:
            raise ValidationError(f"File {f.filename!r} is empty", code="empty_file")
    files: list[dict[str, object]] = [
        {
            "name": canonical,
            "original_name": f.filename,
            "sha256": f.sha256,
            "size_bytes": f.size_bytes,
        }
        for canonical, f in planned
    ]
    sha = model_content_sha256(files)
    existing = store.catalog.find_model_by_sha(sha)
    if existing is not None:
        for f in staged:
            f.discard()
        logger.info("model upload matches existing model %s", existing.id)
        return existing, False

    for _, f in planned:
        store.blobs.commit(f)
    model_id = new_id()
    model_dir = store.blobs.model_dir(model_id)
    shas = [str(f["sha256"]) for f in files]
    try:
        store.blobs.materialise(model_dir, {str(f["name"]): str(f["sha256"]) for f in files})
        # Messages name the client's files (not `model.onnx`) and the API's fields.
        description = describe_model(
            model_dir / planned[0][0],
            shown_names={canonical: f.filename for canonical, f in planned},
            option_names="api",
        )
    except EngineError as exc:
        store.blobs.remove_dir(model_dir)
        store.catalog.release_blobs(shas)
        raise ValidationError(exc.message, code=exc.code) from exc
    except BaseException:
        store.blobs.remove_dir(model_dir)
        store.catalog.release_blobs(shas)
        raise
    primary_name = PurePath(planned[0][1].filename).stem
    row = ModelRow(
        id=model_id,
        name=(name or primary_name or description.name)[:255],
        format=fmt,
        sha256=sha,
        size_bytes=sum(int(str(f["size_bytes"])) for f in files),
        files=files,
        description={
            "model_name": description.name,
            "inputs": [p.model_dump(mode="json") for p in description.inputs],
            "outputs": [p.model_dump(mode="json") for p in description.outputs],
        },
        created_at=utcnow(),
    )
    stored, created = store.catalog.add_model(row)
    if not created:  # the same content landed concurrently
        store.blobs.remove_dir(model_dir)
    return stored, created


def _check_npy(staged: StagedFile, name: str) -> None:
    try:
        array = np.load(staged.path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise ValidationError(
            f"File {name!r} is not a valid .npy array: {exc}",
            code="invalid_input",
            details={"file": name},
        ) from exc
    del array


def ingest_dataset(store: Store, staged: list[StagedFile]) -> DatasetRow:
    """Check and store input files (images, .npy) as a dataset."""
    if not staged:
        raise ValidationError("No input files uploaded (images or .npy files)", code="no_files")
    check_filenames(staged)
    allowed = ", ".join(sorted(IMAGE_EXTENSIONS | NUMPY_EXTENSIONS))
    used: set[str] = set()
    files: list[dict[str, object]] = []
    for index, f in enumerate(staged):
        f.finish()
        name = safe_name(f.filename, f"file{index}")
        suffix = _suffix(name)
        if suffix not in IMAGE_EXTENSIONS | NUMPY_EXTENSIONS:
            raise UnsupportedMediaError(
                f"File {f.filename!r} is neither an image nor a .npy file (allowed: {allowed})",
                code="unsupported_input_type",
                details={"file": f.filename},
            )
        stem, candidate, n = name[: -len(suffix)], name, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}_{n}{suffix}"
        used.add(candidate)
        entry: dict[str, object] = {
            "name": candidate,
            "sha256": f.sha256,
            "size_bytes": f.size_bytes,
        }
        if suffix in NUMPY_EXTENSIONS:
            _check_npy(f, f.filename)
            entry["kind"] = "npy"
        else:
            try:
                width, height = verify_image(f.path)
            except EngineError as exc:
                message = exc.message.replace(f.path.name, f.filename)
                raise ValidationError(
                    message, code="invalid_image", details={"file": f.filename}
                ) from exc
            entry.update(kind="image", width=width, height=height)
        files.append(entry)

    for f in staged:
        store.blobs.commit(f)
    row = DatasetRow(
        id=new_id(),
        count=len(files),
        size_bytes=sum(int(str(f["size_bytes"])) for f in files),
        files=files,
        created_at=utcnow(),
    )
    store.blobs.materialise(
        store.blobs.dataset_dir(row.id), {str(f["name"]): str(f["sha256"]) for f in files}
    )
    return store.catalog.add_dataset(row)
