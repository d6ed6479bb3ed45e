"""Images and files to tensors, the way benchmark_app fills a model's inputs.

- Image inputs (layout NCHW/NHWC/CHW/HWC with 3 channels): decoded with Pillow, BGR unless
  `rgb`, resized to H x W with bilinear resampling (no aspect keeping), laid out in the
  input's layout, as u8 (the model converts: see `model.apply_preprocessing`).
- Image-info inputs ([N, C>=2]): rows of (H, W, 1, ...), as benchmark_app fills them.
- Other inputs: `<input name>.npy` when given, else deterministic random data (seed 0) with a warning.
- `expected_<output name>.npy` files are never inputs: they hold reference outputs for the
  outputs check (`outputs.check`), sorted into `InputFiles.expected`. A model input whose name
  starts with `expected_` cannot be fed from a file.
Consecutive requests and batch slots take consecutive images, cycling.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import openvino as ov
from PIL import Image

from app.engine.errors import InputError
from app.engine.spec import OptionNames, option_example, option_name

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
NUMPY_EXTENSIONS = frozenset({".npy"})
# `expected_<output name>.npy`: a reference output, not a model input.
EXPECTED_PREFIX = "expected_"
# Refuse images whose header declares more pixels than this (decompression bombs).
MAX_IMAGE_PIXELS = 64 * 1024 * 1024

# What Pillow may decode: the formats of IMAGE_EXTENSIONS, whatever a file's name says (no
# EPS through Ghostscript, no exotic plugins reached by content sniffing).
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")

IMAGE_LAYOUTS = frozenset({"[N,C,H,W]", "[N,H,W,C]", "[C,H,W]", "[H,W,C]"})

InputKind = Literal["image", "image_info", "npy", "random"]


@dataclass
class InputFiles:
    """The files a run was given, sorted into images, .npy arrays (by stem) and expected
    outputs (`expected_<output name>.npy`, by the text after `expected_`)."""

    images: list[Path] = field(default_factory=list)
    arrays: dict[str, Path] = field(default_factory=dict)
    expected: dict[str, Path] = field(default_factory=dict)


@dataclass
class InputSlot:
    """One model input as the engine will fill it."""

    name: str
    shape: list[int]
    element_type: ov.Type
    layout: ov.Layout
    kind: InputKind = "random"

    @property
    def layout_str(self) -> str:
        return self.layout.to_string()

    def dim(self, letter: str) -> int:
        return self.shape[self.layout.get_index_by_name(letter)]

    @property
    def batch(self) -> int:
        return self.dim("N") if self.layout.has_name("N") else 1


def collect_input_files(paths: list[str]) -> InputFiles:
    """Expand folders and check every path; unknown file types are an error naming the file."""
    found = InputFiles()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            children = sorted(p for p in path.iterdir() if p.is_file())
            usable = [
                p for p in children if p.suffix.lower() in IMAGE_EXTENSIONS | NUMPY_EXTENSIONS
            ]
            if not usable:
                raise InputError(
                    f"Folder '{path}' has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                    "or .npy files. Put the input files there or pass them one by one."
                )
            candidates = usable
        elif path.is_file():
            candidates = [path]
        else:
            raise InputError(f"Input path '{path}' does not exist. Pass image files or folders.")
        for file in candidates:
            suffix = file.suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                found.images.append(file)
            elif suffix in NUMPY_EXTENSIONS and file.stem.startswith(EXPECTED_PREFIX):
                found.expected[file.stem[len(EXPECTED_PREFIX) :]] = file
            elif suffix in NUMPY_EXTENSIONS:
                found.arrays[file.stem] = file
            else:
                raise InputError(
                    f"Input file '{file}' has an unsupported type '{suffix}'. Use images "
                    f"({', '.join(sorted(IMAGE_EXTENSIONS))}) or .npy files named after a model input."
                )
    return found


def verify_image(path: Path) -> tuple[int, int]:
    """Decode an image fully and return (width, height); InputError naming the file otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PILLOW_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise InputError(
                        f"Image '{path.name}' declares {width}x{height} pixels, more than the "
                        f"{MAX_IMAGE_PIXELS} allowed. Resize it before uploading."
                    )
                image.load()
    except InputError:
        raise
    except (
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise InputError(f"File '{path.name}' is not a decodable image: {exc}") from exc
    return width, height


def load_image(path: Path, width: int, height: int, rgb: bool) -> np.ndarray:
    """An H x W x 3 u8 array: RGB or BGR, resized bilinearly without keeping the aspect ratio."""
    verify_image(path)
    with Image.open(path, formats=PILLOW_FORMATS) as image:
        converted = image.convert("RGB")
        if converted.size != (width, height):
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.uint8)
    return array if rgb else np.ascontiguousarray(array[..., ::-1])


def guess_layout(shape: ov.PartialShape) -> ov.Layout:
    """benchmark_app's guess: 4-D NCHW when dim1 <= 4 < dim3, NHWC when dim3 <= 4 < dim1."""
    colors_max = 4
    rank = shape.rank.get_length() if shape.rank.is_static else 0
    if rank == 4:
        d1, d3 = shape[1].get_max_length(), shape[3].get_max_length()
        if 0 <= d1 <= colors_max < d3 or (d3 == -1 and 0 <= d1 <= colors_max):
            return ov.Layout("NCHW")
        if 0 <= d3 <= colors_max < d1 or (d1 == -1 and 0 <= d3 <= colors_max):
            return ov.Layout("NHWC")
    elif rank == 3:
        d0, d2 = shape[0].get_max_length(), shape[2].get_max_length()
        if 0 <= d0 <= colors_max < d2:
            return ov.Layout("CHW")
        if 0 <= d2 <= colors_max < d0:
            return ov.Layout("HWC")
    return ov.Layout()


def is_image_input(layout: ov.Layout, shape: ov.PartialShape) -> bool:
    if layout.to_string() not in IMAGE_LAYOUTS:
        return False
    channels = shape[layout.get_index_by_name("C")]
    return channels.is_static and channels.get_length() == 3


def is_image_info_input(layout: ov.Layout, shape: ov.PartialShape) -> bool:
    if layout.to_string() != "[N,C]":
        return False
    channels = shape[1]
    return channels.is_static and channels.get_length() >= 2


def _random_array(shape: list[int], dtype: np.dtype) -> np.ndarray:
    """benchmark_app's random fill: uniform over [0, 255] (ints: [0, 256)), seed 0."""
    rs = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(0)))
    if dtype == np.bool_:
        return rs.uniform(0, 2, shape).astype(np.bool_)
    high = 256 if np.dtype(dtype).kind in "iu" else 255
    return rs.uniform(0, high, shape).astype(dtype)


def _numpy_dtype(element_type: ov.Type) -> np.dtype:
    try:
        return np.dtype(element_type.to_dtype())
    except Exception as exc:  # pragma: no cover - exotic element types
        raise InputError(
            f"Cannot fill an input of element type {element_type.get_type_name()}; "
            "supported are the numeric types numpy has."
        ) from exc


def _load_npy(path: Path, slot: InputSlot, dtype: np.dtype) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"File '{path.name}' is not a readable .npy array: {exc}") from exc
    if list(array.shape) == slot.shape:
        return array.astype(dtype, copy=False)
    if list(array.shape) == slot.shape[1:] and slot.layout.has_name("N"):
        return np.broadcast_to(array, slot.shape).astype(dtype)
    raise InputError(
        f"File '{path.name}' holds an array of shape {list(array.shape)}, but input "
        f"'{slot.name}' needs {slot.shape}. Save an array of that shape with np.save."
    )


def _image_batch(
    slot: InputSlot, images: list[Path], first: int, rgb: bool, cache: dict[Path, np.ndarray]
) -> tuple[np.ndarray, list[Path]]:
    height, width = slot.dim("H"), slot.dim("W")
    batch = slot.batch
    used = []
    frames = []
    for b in range(batch):
        path = images[(first + b) % len(images)]
        if path not in cache:
            cache[path] = load_image(path, width, height, rgb)
        used.append(path)
        hwc = cache[path]
        frames.append(
            hwc.transpose(2, 0, 1) if slot.layout_str in ("[N,C,H,W]", "[C,H,W]") else hwc
        )
    stacked = np.stack(frames)
    if not slot.layout.has_name("N"):
        stacked = stacked[0]
    return np.ascontiguousarray(stacked), used


def plan_and_fill(
    slots: list[InputSlot],
    files: InputFiles,
    n_requests: int,
    rgb: bool,
    option_names: OptionNames = "cli",
) -> tuple[list[dict[str, np.ndarray]], dict[str, list[Path]], list[str]]:
    """Decide each slot's kind and build the arrays for every request.

    Returns (per-request arrays by input name, files used by input name, warnings); the
    warnings name options in the `option_names` style.
    """
    inputs_option = option_name("input_paths", option_names)
    warns: list[str] = []
    image_slots = [s for s in slots if s.kind == "image"]
    for slot in slots:
        if slot.name in files.arrays:
            slot.kind = "npy"
    if files.images and not image_slots:
        warns.append(
            f"{len(files.images)} image(s) given, but the model has no image input "
            "(layout NCHW/NHWC with 3 channels); they are not used. If an input is an image, "
            f"give its layout, e.g. {option_example('layout', 'NCHW', option_names)}."
        )
    unused_npy = set(files.arrays) - {s.name for s in slots}
    if unused_npy:
        names = ", ".join(f"'{n}.npy'" for n in sorted(unused_npy))
        warns.append(
            f"{names} match no model input (inputs: {', '.join(s.name for s in slots)}); not used."
        )

    cache: dict[Path, np.ndarray] = {}
    used: dict[str, list[Path]] = {s.name: [] for s in slots}
    per_request: list[dict[str, np.ndarray]] = [{} for _ in range(n_requests)]
    image_hw = next(((s.dim("H"), s.dim("W")) for s in slots if s.kind == "image"), None)
    for slot in slots:
        dtype = _numpy_dtype(slot.element_type)
        if slot.kind == "image" and files.images:
            for r in range(n_requests):
                array, paths = _image_batch(slot, files.images, r * slot.batch, rgb, cache)
                per_request[r][slot.name] = array
                used[slot.name].extend(p for p in paths if p not in used[slot.name])
            continue
        if slot.kind == "npy":
            array = _load_npy(files.arrays[slot.name], slot, dtype)
            used[slot.name].append(files.arrays[slot.name])
        elif slot.kind == "image_info" and image_hw is not None:
            array = np.ones(slot.shape, dtype=dtype)
            array[:, 0], array[:, 1] = image_hw
        else:
            if slot.kind == "image":
                warns.append(
                    f"No images given: image input '{slot.name}' is filled with random data. "
                    f"Give images among the inputs ({inputs_option}) to feed it."
                )
            else:
                warns.append(
                    f"Input '{slot.name}' is filled with random data (seed 0). To use real data, "
                    f"give a file named '{slot.name}.npy' of shape {slot.shape} among the inputs "
                    f"({inputs_option})."
                )
            slot.kind = "random"
            array = _random_array(slot.shape, dtype)
        for r in range(n_requests):
            per_request[r][slot.name] = array
    for slot in slots:
        if slot.kind == "image" and files.images and len(used[slot.name]) < len(files.images):
            warns.append(
                f"Only {len(used[slot.name])} of {len(files.images)} images feed input '{slot.name}' "
                f"({n_requests} request(s) x batch {slot.batch}); each request reuses its tensor, "
                f"as benchmark_app does. Raise {option_name('nireq', option_names)} or "
                f"{option_name('batch', option_names)} to use more."
            )
    return per_request, used, warns
