"""The outputs check: what the first inference computed, and whether it matches references.

`check` runs once per job, right after the warm-up inference and outside the measured loop,
on the request that ran it. It tells whether the model computed something sane on that device
(an f16 overflow on a GPU gives NaN; a wrong layout gives garbage).

Per output (`OutputSummary`): shape and element type as the device returned them; min, max
and mean over the finite values (null when there are none, or for element types numpy cannot
decode: u4, f8, ...; bf16 is decoded); the NaN and Inf counts (any adds a warning); sha256 of
the tensor's bytes in C order as returned (bf16: its raw 2-byte values); for a 2-D [N, C]
output, the indices of the 5 highest values of each of the first 8 rows, highest first (ties:
lower index first; NaN ranks last; fewer than 5 classes: all of them). Booleans count as 0/1.

Expected outputs: `expected_<output name>.npy` among a run's files (`InputFiles.expected`).
They hold the outputs for the first inference's inputs, i.e. the first batch the dataset fills
into request 0: the first images in file-name order (one per batch slot), the `<input>.npy`
arrays, or the seed-0 random data. A file matches an output when its name after `expected_`
is any of the port's names. `/` and `:` cannot be in every file name (the service keeps
letters, digits and `._:+-` of an uploaded name and turns the rest into `_`), so when no
output's name matches exactly, names are compared with every character other than letters,
digits and `.`, `_`, `+`, `-` replaced by `_` on both sides: the output `det/boxes:0` matches
`expected_det_boxes_0.npy` and `expected_det_boxes:0.npy`. Outputs without a name are
`output<i>` (i: the output's index). A file that matches no output is a warning naming it and
the model's outputs; a file matching several outputs is compared with each.

A comparison (`OutputComparison`) needs equal shapes (else no match, naming both). Values are
compared as float64 with np.isclose semantics, |actual - expected| <= atol + rtol * |expected|,
where NaN matches NaN and an Inf the same Inf. max_abs_error is the largest |actual - expected|
and max_rel_error the largest |actual - expected| / max(|expected|, 1.2e-38) (the smallest
normal f32), both over the elements finite in both (null when none). A file that is not a
readable numeric .npy array is a failed comparison with the reason, never an exception.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

from app.engine.integrity import OutputComparison, OutputsCheck, OutputSummary

logger = logging.getLogger(__name__)

TOP_K = 5
TOP_ROWS = 8
# Element types whose `Tensor.data` is the values themselves (bf16 is decoded separately;
# f8, u4, nf4 ... come back as packed bytes).
_PLAIN_TYPES = frozenset(
    {"f64", "f32", "f16", "i64", "i32", "i16", "i8", "u64", "u32", "u16", "u8", "boolean"}
)
_NOT_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._+-]")
_TINY = float(np.finfo(np.float32).tiny)


@dataclass
class _Output:
    """One output as read from the request: `values` is None when numpy cannot decode them."""

    name: str
    names: list[str]
    element_type: str
    shape: list[int]
    values: np.ndarray | None
    sha256: str

    @property
    def file_safe_names(self) -> set[str]:
        return {_file_safe(n) for n in self.names}


def _file_safe(name: str) -> str:
    return _NOT_IN_FILE_NAMES.sub("_", name)


def _read(request: ov.InferRequest, port: ov.ConstOutput, index: int) -> _Output:
    names = sorted(port.get_names())
    name = port.get_any_name() if names else f"output{index}"
    tensor = request.get_tensor(port)
    element_type = tensor.get_element_type()
    type_name = element_type.get_type_name()
    shape = [int(d) for d in tensor.shape]
    values: np.ndarray | None = None
    if element_type == ov.Type.string:
        digest = hashlib.sha256(b"\0".join(bytes(b) for b in tensor.bytes_data))
    else:
        data = tensor.data  # a view of the request's memory: no copy
        digest = hashlib.sha256(np.ascontiguousarray(data).data)
        if element_type == ov.Type.bf16:
            widened = data.view(np.uint16).astype(np.uint32) << 16
            values = widened.view(np.float32).reshape(shape)
        elif type_name in _PLAIN_TYPES:
            values = data.reshape(shape)
    return _Output(name, names or [name], type_name, shape, values, digest.hexdigest())


def _stats(values: np.ndarray) -> tuple[float | None, float | None, float | None, int, int]:
    """(min, max, mean over the finite values, NaN count, Inf count)."""
    nan_count = inf_count = 0
    if values.dtype.kind == "f":
        nan_count = int(np.count_nonzero(np.isnan(values)))
        inf_count = int(np.count_nonzero(np.isinf(values)))
    if nan_count + inf_count == values.size:  # also an empty output
        return None, None, None, nan_count, inf_count
    if nan_count + inf_count == 0:
        low, high = float(values.min()), float(values.max())
        return low, high, float(values.mean(dtype=np.float64)), 0, 0
    finite = np.isfinite(values)
    return (
        float(np.min(values, where=finite, initial=np.inf)),
        float(np.max(values, where=finite, initial=-np.inf)),
        float(np.mean(values, where=finite, dtype=np.float64)),
        nan_count,
        inf_count,
    )


def _top5(values: np.ndarray) -> list[list[int]] | None:
    if values.ndim != 2 or values.size == 0:
        return None
    rows = values[:TOP_ROWS].astype(np.float64)
    order = np.argsort(-rows, axis=1, kind="stable")[:, :TOP_K]
    return [[int(i) for i in row] for row in order]


def _summary(out: _Output, warns: list[str]) -> OutputSummary:
    low = high = mean = None
    nan_count = inf_count = 0
    top5 = None
    if out.values is None:
        warns.append(
            f"Output '{out.name}' has element type {out.element_type}: its min, max, mean and "
            "top-5 are not computed (only its checksum)."
        )
    else:
        low, high, mean, nan_count, inf_count = _stats(out.values)
        top5 = _top5(out.values)
    if nan_count or inf_count:
        warns.append(
            f"Output '{out.name}' holds {nan_count} NaN and {inf_count} Inf among "
            f"{out.values.size if out.values is not None else 0} values after the first "
            "inference: the device computed something unusable (a float overflow at this "
            "inference precision? inputs in the wrong layout or range?)."
        )
    return OutputSummary(
        name=out.name,
        names=out.names,
        shape=out.shape,
        element_type=out.element_type,
        min=low,
        max=high,
        mean=mean,
        nan_count=nan_count,
        inf_count=inf_count,
        sha256=out.sha256,
        top5=top5,
    )


def _load_expected(path: Path) -> np.ndarray | str:
    """The expected array, or the reason it cannot be used."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        cause = str(exc).replace(str(path), path.name)  # a store's paths stay private
        return f"'{path.name}' is not a readable .npy array: {cause}"
    if not isinstance(loaded, np.ndarray):  # an .npz archive behind a .npy name
        if hasattr(loaded, "close"):
            loaded.close()
        return f"'{path.name}' is an .npz archive, not a .npy array: save it with np.save."
    if loaded.dtype.kind not in "biuf":
        return f"'{path.name}' holds {loaded.dtype} values, not numbers."
    return loaded


def _mismatch_reason(
    actual: np.ndarray, expected: np.ndarray, close: np.ndarray, rtol: float, atol: float
) -> str:
    bad = ~close
    finite_bad = bad & np.isfinite(actual) & np.isfinite(expected)
    if finite_bad.any():
        flat = int(np.argmax(np.where(finite_bad, np.abs(actual - expected), -1.0)))
    else:
        flat = int(np.argmax(bad))
    where = [int(i) for i in np.unravel_index(flat, actual.shape)] if actual.ndim else []
    return (
        f"{int(np.count_nonzero(bad))} of {actual.size} values differ by more than "
        f"atol + rtol * |expected| (atol {atol:g}, rtol {rtol:g}); e.g. at index {where}: "
        f"{actual.flat[flat]:g}, expected {expected.flat[flat]:g}."
    )


def _compare(out: _Output, path: Path, rtol: float, atol: float) -> OutputComparison:
    def failed(reason: str) -> OutputComparison:
        return OutputComparison(
            name=out.name,
            expected_file=path.name,
            max_abs_error=None,
            max_rel_error=None,
            match=False,
            reason=reason,
        )

    if out.values is None:
        return failed(f"Output '{out.name}' has element type {out.element_type}: not compared.")
    loaded = _load_expected(path)
    if isinstance(loaded, str):
        return failed(loaded)
    if list(loaded.shape) != out.shape:
        return failed(
            f"Output '{out.name}' has shape {out.shape}, but '{path.name}' holds shape "
            f"{list(loaded.shape)}."
        )
    actual = out.values.astype(np.float64)
    expected = loaded.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        error = np.abs(actual - expected)
        relative = error / np.maximum(np.abs(expected), _TINY)
    both_finite = np.isfinite(actual) & np.isfinite(expected)
    max_abs = max_rel = None
    if both_finite.any():
        max_abs = float(np.max(error, where=both_finite, initial=0.0))
        max_rel = float(np.max(relative, where=both_finite, initial=0.0))
    mismatched = int(close.size - np.count_nonzero(close))
    return OutputComparison(
        name=out.name,
        expected_file=path.name,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        match=mismatched == 0,
        reason=None if mismatched == 0 else _mismatch_reason(actual, expected, close, rtol, atol),
        mismatched_elements=mismatched,
    )


def check(
    request: ov.InferRequest,
    ports: Sequence[ov.ConstOutput],
    expected: Mapping[str, Path],
    rtol: float,
    atol: float,
) -> tuple[OutputsCheck, list[str]]:
    """Summarise the outputs `request` holds and compare them with the expected files.

    `ports`: the compiled model's outputs, in order; `expected`: files by the output name
    they give (the text after `expected_`, as `InputFiles.expected` has them). Returns the
    check and its warnings (NaN/Inf, mismatches, expected files naming no output).
    """
    warns: list[str] = []
    outs = [_read(request, port, i) for i, port in enumerate(ports)]
    summaries = [_summary(out, warns) for out in outs]
    compared: list[OutputComparison] = []
    for key, path in sorted(expected.items()):
        matching = [out for out in outs if key in out.names] or [
            out for out in outs if _file_safe(key) in out.file_safe_names
        ]
        if not matching:
            warns.append(
                f"'{path.name}' names no output of the model (outputs: "
                f"{', '.join(out.name for out in outs)}); it is not compared. Name it "
                "expected_<output name>.npy."
            )
        for out in matching:
            comparison = _compare(out, path, rtol, atol)
            if not comparison.match:
                warns.append(
                    f"Output '{out.name}' does not match '{path.name}': {comparison.reason}"
                )
            compared.append(comparison)
    matched = all(c.match for c in compared) if compared else None
    logger.info(
        "Outputs check: %d output(s)%s",
        len(summaries),
        f", {len(compared)} compared with expected files: "
        + ("all match" if matched else "mismatch")
        if compared
        else ", no expected_<output>.npy to compare with",
    )
    return (
        OutputsCheck(
            outputs=summaries,
            rtol=rtol,
            atol=atol,
            compared=compared,
            outputs_match=matched,
        ),
        warns,
    )
