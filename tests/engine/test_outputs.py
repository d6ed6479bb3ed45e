"""The outputs check on real CPU inferences: summaries, top-5, expected files and tolerances."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset16 as ops
import pytest

from app.engine import inputs, outputs
from app.engine import model as model_mod
from app.engine.integrity import OutputsCheck
from app.engine.runner import set_request_inputs
from app.engine.samples import named_parameter, named_result
from tests.factories import write_identity_model

# Exact values: the CPU plugin may infer in bf16 by default on this machine.
F32 = {"INFERENCE_PRECISION_HINT": "f32"}
KNOWN = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)  # not an image: NCHW is not guessed


def _run(
    model: Path | ov.Model,
    paths: list[Path],
    rtol: float = 1e-2,
    atol: float = 1e-3,
    config: dict[str, str] | None = None,
) -> tuple[OutputsCheck, list[str]]:
    """Fill the model from `paths` the engine's way, infer once on CPU and check the outputs."""
    core = ov.Core()
    if isinstance(model, Path):
        model = model_mod.read_model(core, model)
    resolved = model_mod.resolve_inputs(model, None, None, None, None)
    model = model_mod.apply_preprocessing(model, resolved.slots)
    files = inputs.collect_input_files([str(p) for p in paths])
    per_request, _, _ = inputs.plan_and_fill(resolved.slots, files, 1, False)
    compiled = core.compile_model(model, "CPU", F32 if config is None else config)
    request = compiled.create_infer_request()
    set_request_inputs(request, per_request[0], dynamic=False)
    request.infer()
    return outputs.check(request, compiled.outputs, files.expected, rtol, atol)


def _save(directory: Path, name: str, array: np.ndarray) -> Path:
    path = directory / name
    np.save(path, array)
    return path


def _unary_model(
    build: Callable[[ov.Node], ov.Node], shape: list[int], element_type: ov.Type = ov.Type.f32
) -> ov.Model:
    """ "input" -> build(input) -> "output"."""
    param = named_parameter("input", shape, element_type)
    node = build(param)
    return ov.Model([named_result(node.output(0), "output")], [param], "unary")


def test_summary_of_a_known_array(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    check, warns = _run(xml, [_save(tmp_path, "input.npy", KNOWN)], config={})
    [summary] = check.outputs
    assert (summary.name, summary.names) == ("output", ["output"])
    assert summary.shape == [1, 3, 4, 4] and summary.element_type == "f32"
    assert (summary.min, summary.max, summary.mean) == (0.0, 47.0, 23.5)
    assert (summary.nan_count, summary.inf_count) == (0, 0)
    # Integers up to 256 survive bf16, whatever precision the plugin chose.
    assert summary.sha256 == hashlib.sha256(KNOWN.tobytes()).hexdigest()
    assert summary.top5 is None  # 4-D
    assert check.compared == [] and check.outputs_match is None
    assert (check.rtol, check.atol) == (1e-2, 1e-3)
    assert warns == []


def test_nan_and_inf_through_identity_are_counted_and_warned(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path, shape=(2, 3))
    values = np.array([[np.nan, np.inf, -np.inf], [1.0, -2.0, 7.0]], dtype=np.float32)
    check, warns = _run(xml, [_save(tmp_path, "input.npy", values)])
    [summary] = check.outputs
    assert (summary.nan_count, summary.inf_count) == (1, 2)
    assert (summary.min, summary.max, summary.mean) == (-2.0, 7.0, 2.0)  # finite values only
    [warning] = warns
    assert "'output'" in warning and "1 NaN and 2 Inf among 6 values" in warning


def test_nan_computed_by_the_model_and_all_nan_output(tmp_path: Path) -> None:
    model = _unary_model(ops.sqrt, [1, 4])
    values = np.array([[-1.0, 4.0, 9.0, 0.0]], dtype=np.float32)
    check, warns = _run(model, [_save(tmp_path, "input.npy", values)])
    [summary] = check.outputs
    assert summary.nan_count == 1 and summary.inf_count == 0
    assert (summary.min, summary.max) == (0.0, 3.0)
    assert summary.mean == pytest.approx(5 / 3)
    assert summary.top5 == [[2, 1, 3, 0]]  # NaN ranks last
    assert len(warns) == 1 and "1 NaN and 0 Inf" in warns[0]

    check, _ = _run(model, [_save(tmp_path, "input.npy", np.full((1, 4), -1.0, np.float32))])
    assert check.outputs[0].nan_count == 4
    assert (check.outputs[0].min, check.outputs[0].max, check.outputs[0].mean) == (None,) * 3


def test_top5_per_row_for_at_most_eight_rows(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path, shape=(10, 7))
    rows = [[0.1, 0.9, 0.3, 0.7, 0.5, 0.2, 0.8], [1.0] * 7]
    rows += [list(np.roll(np.arange(7.0), k)) for k in range(2, 10)]
    check, _ = _run(xml, [_save(tmp_path, "input.npy", np.array(rows, dtype=np.float32))])
    top5 = check.outputs[0].top5
    assert top5 is not None and len(top5) == 8
    assert top5[0] == [1, 6, 3, 4, 2]
    assert top5[1] == [0, 1, 2, 3, 4]  # ties: lower index first
    for k in range(2, 8):  # np.roll by k puts value v at index (v + k) % 7
        assert top5[k] == [(v + k) % 7 for v in (6, 5, 4, 3, 2)]


def test_top5_with_fewer_than_five_classes_gives_all_in_order(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path, shape=(1, 3))
    check, _ = _run(xml, [_save(tmp_path, "input.npy", np.array([[2.0, -1.0, 5.0]], np.float32))])
    assert check.outputs[0].top5 == [[2, 0, 1]]


def test_expected_within_tolerance_matches_with_right_errors(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    given = [_save(tmp_path, "input.npy", KNOWN)]
    near = KNOWN.astype(np.float64) * 1.005  # 0.5% off: inside rtol 1e-2
    check, warns = _run(xml, [*given, _save(tmp_path, "expected_output.npy", near)])
    [comparison] = check.compared
    assert comparison.name == "output" and comparison.expected_file == "expected_output.npy"
    assert comparison.match and comparison.reason is None and comparison.mismatched_elements == 0
    assert comparison.max_abs_error == pytest.approx(47 * 0.005)
    assert comparison.max_rel_error == pytest.approx(0.005 / 1.005)
    assert check.outputs_match is True and warns == []
    # The same file fails a tighter tolerance.
    check, warns = _run(xml, [*given, tmp_path / "expected_output.npy"], rtol=1e-3, atol=1e-3)
    assert check.outputs_match is False and check.compared[0].mismatched_elements == 47
    assert len(warns) == 1 and "does not match 'expected_output.npy'" in warns[0]


def test_atol_and_rtol_follow_allclose_semantics(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    given = [_save(tmp_path, "input.npy", KNOWN)]
    inside = _save(tmp_path, "expected_output.npy", KNOWN.astype(np.float64) + 0.0009)
    assert _run(xml, [*given, inside], rtol=0, atol=1e-3)[0].outputs_match is True
    outside = _save(tmp_path, "expected_output.npy", KNOWN.astype(np.float64) + 0.0011)
    assert _run(xml, [*given, outside], rtol=0, atol=1e-3)[0].outputs_match is False
    # rtol scales with |expected|: 1.1 off at 100 is inside atol 1e-3 + rtol 1.2e-2 * 100.
    scaled = KNOWN.astype(np.float64) * 100
    scaled.flat[1] += 1.1
    feed = _save(tmp_path, "input.npy", KNOWN * 100)
    near = _save(tmp_path, "expected_output.npy", scaled)
    assert _run(xml, [feed, near], rtol=1.2e-2, atol=1e-3)[0].outputs_match is True
    assert _run(xml, [feed, near], rtol=1e-2, atol=1e-3)[0].outputs_match is False


def test_perturbed_expected_fails_naming_the_worst_element(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    perturbed = KNOWN.copy()
    perturbed[0, 1, 2, 3] += 0.5  # the value 27 becomes 27.5
    perturbed[0, 0, 0, 1] += 0.0001  # inside atol
    check, warns = _run(
        xml,
        [_save(tmp_path, "input.npy", KNOWN), _save(tmp_path, "expected_output.npy", perturbed)],
    )
    [comparison] = check.compared
    assert comparison.match is False and check.outputs_match is False
    assert comparison.mismatched_elements == 1
    assert comparison.max_abs_error == pytest.approx(0.5)
    assert comparison.max_rel_error == pytest.approx(0.5 / 27.5)
    assert comparison.reason is not None
    assert "1 of 48 values" in comparison.reason and "[0, 1, 2, 3]" in comparison.reason
    assert "27, expected 27.5" in comparison.reason
    assert len(warns) == 1 and comparison.reason in warns[0]


def test_shape_mismatch_names_both_shapes(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    check, _ = _run(
        xml,
        [
            _save(tmp_path, "input.npy", KNOWN),
            _save(tmp_path, "expected_output.npy", KNOWN.reshape(1, 48)),
        ],
    )
    [comparison] = check.compared
    assert comparison.match is False and check.outputs_match is False
    assert comparison.reason is not None
    assert "[1, 3, 4, 4]" in comparison.reason and "[1, 48]" in comparison.reason
    assert comparison.max_abs_error is None and comparison.mismatched_elements is None


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not an npy file", "not a readable .npy array"),
        (None, "holds <U3 values, not numbers"),
    ],
)
def test_bad_expected_file_fails_the_comparison_without_raising(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    xml = write_identity_model(tmp_path)
    bad = tmp_path / "expected_output.npy"
    if content is None:
        np.save(bad, np.array(["abc"]))
    else:
        bad.write_bytes(content)
    check, warns = _run(xml, [_save(tmp_path, "input.npy", KNOWN), bad])
    [comparison] = check.compared
    assert comparison.match is False and check.outputs_match is False
    assert comparison.reason is not None and words in comparison.reason
    assert "expected_output.npy" in comparison.reason and str(tmp_path) not in comparison.reason
    assert len(warns) == 1


def test_expected_file_naming_no_output_is_a_warning(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    check, warns = _run(
        xml, [_save(tmp_path, "input.npy", KNOWN), _save(tmp_path, "expected_logits.npy", KNOWN)]
    )
    assert check.compared == [] and check.outputs_match is None
    [warning] = warns
    assert "'expected_logits.npy'" in warning and "(outputs: output)" in warning


def test_expected_files_are_not_model_inputs(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path)
    _save(tmp_path, "input.npy", KNOWN)
    _save(tmp_path, "expected_input.npy", KNOWN + 100)  # named like the input: still not fed
    _save(tmp_path, "expected_output.npy", KNOWN)
    check, warns = _run(xml, [tmp_path])
    assert check.outputs[0].max == 47.0  # fed from input.npy
    assert [c.expected_file for c in check.compared] == ["expected_output.npy"]
    assert check.outputs_match is True
    assert len(warns) == 1 and "'expected_input.npy' names no output" in warns[0]


def _named_model(with_det_boxes_0: bool) -> ov.Model:
    """ "input" [1,3] -> 2 * input, named "probs", "det/boxes:0" and "my out" (and 3 * input,
    named "det_boxes_0")."""
    param = named_parameter("input", [1, 3])
    two = ops.multiply(param, ops.constant(np.float32(2)))
    two.output(0).set_names({"probs", "det/boxes:0", "my out"})
    results = [two.output(0)]
    if with_det_boxes_0:
        three = ops.multiply(param, ops.constant(np.float32(3)))
        three.output(0).set_names({"det_boxes_0"})
        results.append(three.output(0))
    return ov.Model(results, [param], "named")


def test_several_names_and_characters_not_allowed_in_file_names(tmp_path: Path) -> None:
    values = np.array([[1.0, 2.0, 3.0]], np.float32)
    feed = _save(tmp_path, "input.npy", values)
    # "det/boxes:0" cannot be a file name: any spelling with "_" for "/" or ":" matches it.
    for i, name in enumerate(["probs", "det_boxes_0", "det_boxes:0", "det:boxes_0", "my_out"]):
        directory = tmp_path / str(i)
        directory.mkdir()
        expected = directory / f"expected_{name}.npy"
        np.save(expected, values * 2)
        check, warns = _run(_named_model(False), [feed, expected])
        assert check.outputs_match is True, (name, warns)
        assert check.outputs[0].names == ["det/boxes:0", "my out", "probs"]
    # An exact name wins over one equal after the replacement.
    check, _ = _run(
        _named_model(True), [feed, _save(tmp_path, "expected_det_boxes_0.npy", values * 3)]
    )
    assert [c.name for c in check.compared] == ["det_boxes_0"] and check.outputs_match is True
    # A wrong name is not forgiven by the replacement.
    check, warns = _run(
        _named_model(False), [feed, _save(tmp_path, "expected_det_boxes.npy", values * 2)]
    )
    assert check.outputs_match is None and "names no output" in warns[0]


def test_output_without_a_name_is_output_i(tmp_path: Path) -> None:
    param = named_parameter("input", [1, 2])
    first = ops.relu(param)
    first.output(0).set_names({"first"})
    second = ops.multiply(param, ops.constant(np.float32(3)))
    model = ov.Model([first.output(0), second.output(0)], [param], "unnamed")
    model.outputs[1].set_names(set())
    values = np.array([[1.0, 2.0]], np.float32)
    check, _ = _run(
        model,
        [_save(tmp_path, "input.npy", values), _save(tmp_path, "expected_output1.npy", values * 3)],
    )
    assert [s.name for s in check.outputs] == ["first", "output1"]
    assert [c.name for c in check.compared] == ["output1"] and check.outputs_match is True


def test_integer_and_boolean_outputs(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path, shape=(2, 3), element_type=ov.Type.i32)
    ints = np.array([[-5, 0, 7], [3, 3, 1]], dtype=np.int32)
    check, warns = _run(
        xml, [_save(tmp_path, "input.npy", ints), _save(tmp_path, "expected_output.npy", ints)]
    )
    [summary] = check.outputs
    assert summary.element_type == "i32" and (summary.min, summary.max) == (-5.0, 7.0)
    assert summary.mean == pytest.approx(9 / 6)
    assert summary.top5 == [[2, 1, 0], [0, 1, 2]]
    assert summary.sha256 == hashlib.sha256(ints.tobytes()).hexdigest()
    assert check.outputs_match is True and warns == []

    model = _unary_model(lambda p: ops.greater(p, ops.constant(np.float32(0))), [2, 3])
    values = np.array([[1.0, -1.0, 2.0], [0.0, 3.0, -4.0]], np.float32)
    flags = values > 0
    check, warns = _run(
        model, [_save(tmp_path, "input.npy", values), _save(tmp_path, "expected_output.npy", flags)]
    )
    [summary] = check.outputs
    assert summary.element_type == "boolean"
    assert (summary.min, summary.max, summary.mean) == (0.0, 1.0, 0.5)
    assert summary.sha256 == hashlib.sha256(flags.tobytes()).hexdigest()
    assert check.outputs_match is True and warns == []


def test_f16_and_bf16_outputs_are_decoded(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path, shape=(2, 3), element_type=ov.Type.f16)
    big = np.full((2, 3), 65504, dtype=np.float16)  # f16's largest: a f16 sum would overflow
    check, warns = _run(xml, [_save(tmp_path, "input.npy", big)])
    [summary] = check.outputs
    assert summary.element_type == "f16" and summary.mean == 65504.0 and warns == []

    model = _unary_model(lambda p: ops.convert(p, ov.Type.bf16), [2, 3])
    values = np.array([[1.5, 2.0, 3.0], [4.0, 5.0, -7.0]], np.float32)  # exact in bf16
    check, warns = _run(
        model,
        [_save(tmp_path, "input.npy", values), _save(tmp_path, "expected_output.npy", values)],
        rtol=0,
        atol=0,
    )
    [summary] = check.outputs
    assert summary.element_type == "bf16"
    assert (summary.min, summary.max, summary.mean) == (-7.0, 5.0, 8.5 / 6)
    assert summary.top5 == [[2, 1, 0], [1, 0, 2]]
    raw = (values.view(np.uint32) >> 16).astype(np.uint16)  # bf16: the high half of f32
    assert summary.sha256 == hashlib.sha256(raw.tobytes()).hexdigest()
    assert check.outputs_match is True and warns == []


def test_empty_output(tmp_path: Path) -> None:
    xml = write_identity_model(tmp_path, shape=(0, 3))
    empty = np.zeros((0, 3), np.float32)
    check, warns = _run(
        xml, [_save(tmp_path, "input.npy", empty), _save(tmp_path, "expected_output.npy", empty)]
    )
    [summary] = check.outputs
    assert summary.shape == [0, 3] and summary.top5 is None
    assert (summary.min, summary.max, summary.mean, summary.nan_count) == (None, None, None, 0)
    assert summary.sha256 == hashlib.sha256(b"").hexdigest()
    [comparison] = check.compared
    assert comparison.match is True and comparison.max_abs_error is None and warns == []
