"""Local files as the server would store them: the names it gives them and their digests.

The client asks the server for a model or dataset with the same content before it uploads
one, so it computes here what the server computes on upload (`app.services.ingest`):

- a model's `sha256` is one SHA-256 over its files' canonical names (`model.xml` and
  `model.bin`, `model.onnx` ...) and the SHA-256 of each, sorted by name
  (`ingest.model_content_sha256`);
- a dataset file's name is its base name made safe (`ingest.safe_name`), with `_2`, `_3` ...
  before the suffix when two files share a name.

The server's code needs OpenVINO (and the store); this module needs neither, so the suffixes
are repeated here, and tests/client checks that they agree with the engine's and that the
digests agree with what a real server answers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# engine.model.MODEL_FORMATS: the suffixes of a model's main file.
MODEL_SUFFIXES = frozenset({".xml", ".onnx", ".tflite", ".pdmodel", ".pb"})
IR_WEIGHTS_SUFFIX = ".bin"
# engine.inputs: what a folder of inputs contributes.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
NUMPY_EXTENSIONS = frozenset({".npy"})
INPUT_EXTENSIONS = IMAGE_EXTENSIONS | NUMPY_EXTENSIONS

_HASH_CHUNK_BYTES = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._:+-]")  # ingest._UNSAFE


@dataclass(frozen=True)
class LocalFile:
    """A file to upload: where it is here, the name the server stores it under, its digest."""

    path: Path
    stored_name: str
    sha256: str
    size_bytes: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _local(path: Path, stored_name: str) -> LocalFile:
    return LocalFile(path, stored_name, file_sha256(path), path.stat().st_size)


def model_paths(model: Path) -> list[Path]:
    """The files of the model at `model`: an IR's .xml with the .bin beside it (same stem),
    else the file alone. FileNotFoundError names a missing one."""
    if not model.is_file():
        raise FileNotFoundError(f"Model file '{model}' does not exist")
    if model.suffix.lower() != ".xml":
        return [model]
    weights = model.with_suffix(IR_WEIGHTS_SUFFIX)
    if not weights.is_file():
        raise FileNotFoundError(
            f"The OpenVINO IR '{model}' needs its weights '{weights.name}' beside it"
        )
    return [model, weights]


def model_files(paths: Sequence[Path]) -> list[LocalFile] | None:
    """The model's files under the server's canonical names; None when the server would
    refuse the set (no model file, two of them, an IR without exactly one .bin, extra files):
    the upload then lets the server say why."""
    primaries = [p for p in paths if p.suffix.lower() in MODEL_SUFFIXES]
    if len(primaries) != 1:
        return None
    primary = primaries[0]
    suffix = primary.suffix.lower()
    rest = [p for p in paths if p is not primary]
    planned = [_local(primary, f"model{suffix}")]
    if suffix == ".xml":
        if len(rest) != 1 or rest[0].suffix.lower() != IR_WEIGHTS_SUFFIX:
            return None
        planned.append(_local(rest[0], f"model{IR_WEIGHTS_SUFFIX}"))
    elif rest:
        return None
    return planned


def model_sha256(files: Iterable[LocalFile]) -> str:
    """`ModelRead.sha256` of a model with these files (ingest.model_content_sha256)."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.stored_name):
        digest.update(f"{f.stored_name}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def input_paths(paths: Sequence[Path]) -> list[Path]:
    """Files and folders of inputs as `ovbench run -i` takes them: a folder gives its images
    and .npy files (not its subfolders), sorted by name. FileNotFoundError / ValueError name
    the path that gives nothing."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            usable = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS
            )
            if not usable:
                raise ValueError(
                    f"Folder '{path}' has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                    "or .npy files"
                )
            found.extend(usable)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"Input path '{path}' does not exist")
    return found


def safe_name(filename: str, fallback: str) -> str:
    """ingest.safe_name: a name that is safe as one path component on the server."""
    name = _UNSAFE.sub("_", filename).lstrip(".")
    return name[:200] or fallback


def dataset_files(paths: Sequence[Path]) -> list[LocalFile]:
    """The input files under the names the server stores them by, in upload order."""
    used: set[str] = set()
    planned: list[LocalFile] = []
    for index, path in enumerate(paths):
        name = safe_name(path.name, f"file{index}")
        suffix = Path(name).suffix.lower()
        stem = name[: -len(suffix)] if suffix else name
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}_{n}{suffix}"
        used.add(candidate)
        planned.append(_local(path, candidate))
    return planned


def same_files(files: Iterable[LocalFile], stored: Iterable[tuple[str, str]]) -> bool:
    """Whether the server's (name, sha256) pairs are exactly these files."""
    return sorted((f.stored_name, f.sha256) for f in files) == sorted(stored)
