"""A model OpenVINO cannot read or convert: the message keeps OpenVINO's cause and gives hints
for the model's format (a .bin only for OpenVINO IR)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.engine.errors import ModelReadError, openvino_message
from app.engine.model import describe_model
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkSpec
from tests.engine.model_builders import (
    write_onnx_custom_op,
    write_onnx_unknown_rank_conv,
    write_tflite_model,
)
from tests.factories import write_broken_copies


def _read_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ModelReadError) as err:
        run_benchmark(BenchmarkSpec(model_path=str(path), niter=1, **kwargs))  # type: ignore[arg-type]
    return err.value.message


def test_tflite_builder_writes_a_model_openvino_runs(tmp_path: Path) -> None:
    """The control for the custom-operator case: the same file with a builtin RELU runs."""
    path = write_tflite_model(tmp_path, None, "relu.tflite")
    result = run_benchmark(BenchmarkSpec(model_path=str(path), niter=2))
    assert result.model.format == "tflite" and result.inputs[0].shape == [1, 4]


def test_onnx_operator_conversion_failure_gives_openvinos_cause(tmp_path: Path) -> None:
    message = _read_error(write_onnx_unknown_rank_conv(tmp_path))
    assert message.startswith("OpenVINO cannot read model 'unknown_rank.onnx'")
    assert "Conv-17" in message
    assert "The input data tensor's rank has to be known (static)" in message
    assert ".bin" not in message
    assert "opset" in message and "(-l)" in message and "rank" in message


def test_onnx_custom_operator_names_the_operator(tmp_path: Path) -> None:
    message = _read_error(write_onnx_custom_op(tmp_path))
    assert "No conversion rule found for operations: com.example.MyOp" in message
    assert ".bin" not in message
    assert "extension library" in message and "(-l)" in message


def test_tflite_custom_operator_gives_openvinos_cause(tmp_path: Path) -> None:
    message = _read_error(write_tflite_model(tmp_path, "MyCustomOp", "edge.tflite"))
    assert message.startswith("OpenVINO cannot read model 'edge.tflite'")
    assert "No translator found for MyCustomOp node" in message
    assert ".bin" not in message
    assert "custom operator" in message and "(-l)" in message


def test_api_style_names_the_extensions_field(tmp_path: Path) -> None:
    message = _read_error(write_onnx_custom_op(tmp_path), option_names="api")
    assert "(extensions)" in message and "-l" not in message


def test_ir_keeps_the_weights_hint(tiny_model: Path, tmp_path: Path) -> None:
    message = _read_error(write_broken_copies(tiny_model, tmp_path)["malformed_xml"])
    assert "'malformed_xml.xml'" in message and ".bin" in message


def test_unreadable_file_does_not_show_the_directory(tiny_model: Path, tmp_path: Path) -> None:
    """OpenVINO quotes the full path; the message names the file only (the API's store)."""
    garbage = write_broken_copies(tiny_model, tmp_path / "deep" / "store")["garbage_onnx"]
    message = _read_error(garbage)
    assert "'garbage.onnx'" in message
    assert str(tmp_path) not in message
    assert ".bin" not in message


def test_describe_model_names_files_by_their_shown_names(tmp_path: Path, tiny_model: Path) -> None:
    """The service stores `model.onnx`; messages name the file the client uploaded."""
    stored = write_onnx_unknown_rank_conv(tmp_path / "store", "model.onnx")
    with pytest.raises(ModelReadError) as err:
        describe_model(stored, shown_names={"model.onnx": "my_net.onnx"}, option_names="api")
    message = err.value.message
    assert "'my_net.onnx'" in message and "model.onnx" not in message
    assert str(tmp_path) not in message
    assert "The input data tensor's rank has to be known (static)" in message

    ir = tmp_path / "ir"
    ir.mkdir()
    shutil.copyfile(tiny_model, ir / "model.xml")
    (ir / "model.bin").write_bytes(tiny_model.with_suffix(".bin").read_bytes()[:100])
    with pytest.raises(ModelReadError) as err:
        describe_model(ir / "model.xml", shown_names={"model.xml": "a.xml", "model.bin": "a.bin"})
    assert "'a.bin'" in err.value.message and "'a.xml'" in err.value.message
    assert "model.bin" not in err.value.message and "model.xml" not in err.value.message


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("garbage.onnx", "complete ONNX model"),
        ("garbage.tflite", "complete TensorFlow Lite (.tflite) model"),
        ("garbage.pb", "in a format OpenVINO"),
    ],
)
def test_unreadable_files_get_the_hint_of_their_format(
    tmp_path: Path, name: str, hint: str
) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 4)
    message = _read_error(path)
    assert message.startswith(f"OpenVINO cannot read model '{name}'")
    assert hint in message and ".bin" not in message


def test_a_long_conversion_report_is_cut_to_the_first_failures() -> None:
    """OpenVINO's report, as its frontends print it, for five failed operations."""
    blocks = "".join(
        f"-- Op{i}-17 with a message:\nWhile validating ONNX node '<Node(Op{i}): n{i}>': "
        f"Check 'x' failed at src/op.cpp:1:\nFrontEnd API failed with GeneralFailure:\n"
        f"cause number {i}.\n"
        for i in range(5)
    )
    text = (
        "Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at x.cpp:1:\n"
        "FrontEnd API failed with OpConversionFailure:\n"
        f"Model wasn't fully converted. Failed operations detailed log:\n{blocks}\n"
        "Summary:\n-- Conversion is failed for: Op0-17, Op1-17, Op2-17, Op3-17, Op4-17\n"
        "-- No conversion rule found for operations: Strange-1\n"
    )
    assert openvino_message(RuntimeError(text)) == (
        "Op0-17: cause number 0; Op1-17: cause number 1; Op2-17: cause number 2; and 2 more; "
        "No conversion rule found for operations: Strange-1"
    )
