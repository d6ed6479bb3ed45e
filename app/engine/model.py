"""Read, describe, reshape and pre-process a model; every failure is an error naming the file.

Formats are whatever `ov.Core.read_model` reads; for OpenVINO IR the weights must sit
beside the `.xml` with the same stem (`model.xml` + `model.bin`).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import openvino as ov

from app.engine.errors import DynamicShapeError, InputError, ModelReadError, openvino_message
from app.engine.inputs import (
    InputSlot,
    guess_layout,
    is_image_info_input,
    is_image_input,
)
from app.engine.shape_advice import batch_without_n_advice, dynamic_shape_advice
from app.engine.spec import (
    ModelDescription,
    ModelFile,
    OptionNames,
    PortInfo,
    option_name,
)

MODEL_FORMATS: dict[str, str] = {
    ".xml": "openvino_ir",
    ".onnx": "onnx",
    ".tflite": "tflite",
    ".pdmodel": "paddle",
    ".pb": "tensorflow",
}
_HASH_CHUNK_BYTES = 1 << 20
# An IR .xml is checked in memory before OpenVINO parses it; larger ones are refused.
MAX_IR_XML_BYTES = 512 * 1024 * 1024
# Markup an OpenVINO IR never contains: DTDs, entity declarations (billion laughs, external
# entities) and processing instructions other than the XML declaration.
_FORBIDDEN_MARKUP = re.compile(rb"<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST|<\?(?!xml[\s?])", re.I)
_DATA_TAG = re.compile(rb"<data\b[^>]*>")
_ATTRIBUTE = re.compile(rb'\b(offset|size)\s*=\s*["\']\s*(\d+)\s*["\']')


def model_format(path: Path) -> str:
    fmt = MODEL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(MODEL_FORMATS))
        raise ModelReadError(
            f"Model file '{path.name}' has an unknown extension '{path.suffix}'. "
            f"Supported: {known} (OpenVINO IR needs the .xml and its .bin)."
        )
    return fmt


def _shown(file: Path, shown_names: dict[str, str] | None) -> str:
    """The name messages give a model file: the client's name for a stored file, else its own."""
    return (shown_names or {}).get(file.name, file.name)


def model_files(path: Path, shown_names: dict[str, str] | None = None) -> list[Path]:
    """The files a model consists of (IR: .xml and .bin), checked to exist and be non-empty.

    `shown_names` maps file names to the names messages give them (the service stores
    `model.onnx` for the client's `resnet.onnx`).
    """
    fmt = model_format(path)
    files = [path]
    if fmt == "openvino_ir":
        files.append(path.with_suffix(".bin"))
    for file in files:
        shown = _shown(file, shown_names)
        if not file.is_file():
            hint = (
                f" Put '{shown}' next to '{_shown(path, shown_names)}'."
                if file.suffix == ".bin"
                else " Check the path."
            )
            raise ModelReadError(f"Model file '{shown}' not found.{hint}")
        if file.stat().st_size == 0:
            raise ModelReadError(f"Model file '{shown}' is empty (0 bytes). Upload it again.")
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_ir_files(xml: Path, weights: Path, shown_names: dict[str, str] | None = None) -> None:
    """Refuse an IR before OpenVINO's parser sees it: non-UTF-8 text, any DTD or entity
    declaration, or a .bin whose size is not what the .xml's constants need."""
    xml_name, weights_name = _shown(xml, shown_names), _shown(weights, shown_names)
    size = xml.stat().st_size
    if size > MAX_IR_XML_BYTES:
        raise ModelReadError(
            f"Model file '{xml_name}' is {size} bytes; IR .xml files over "
            f"{MAX_IR_XML_BYTES} bytes are refused."
        )
    text = xml.read_bytes()
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelReadError(
            f"Model file '{xml_name}' is not UTF-8 text (byte {exc.start}); an OpenVINO IR .xml is."
        ) from exc
    forbidden = _FORBIDDEN_MARKUP.search(text)
    if forbidden is not None:
        raise ModelReadError(
            f"Model file '{xml_name}' contains '{forbidden.group().decode()}' markup (a DTD, "
            "entity declaration or processing instruction), which an OpenVINO IR never has; "
            "refused before parsing."
        )
    needed = 0
    for tag in _DATA_TAG.finditer(text):
        attributes = dict(_ATTRIBUTE.findall(tag.group()))
        if b"offset" in attributes and b"size" in attributes:
            needed = max(needed, int(attributes[b"offset"]) + int(attributes[b"size"]))
    actual = weights.stat().st_size
    if needed and actual != needed:
        raise ModelReadError(
            f"Weights file '{weights_name}' is {actual} bytes, but '{xml_name}' needs exactly "
            f"{needed}: it is truncated or belongs to another model. Upload the matching pair."
        )


def read_model(
    core: ov.Core,
    path: Path,
    *,
    shown_names: dict[str, str] | None = None,
    option_names: OptionNames = "cli",
) -> ov.Model:
    """Read a model; ModelReadError with OpenVINO's cause and hints for its format."""
    files = model_files(path, shown_names)
    if len(files) == 2:
        check_ir_files(files[0], files[1], shown_names)
    try:
        if len(files) == 2:
            model = core.read_model(str(files[0]), str(files[1]))
        else:
            model = core.read_model(str(path))
    except Exception as exc:
        cause = openvino_message(exc)
        # OpenVINO quotes the full path; a message names the file (a store's paths stay private).
        for file in files:
            for spelling in {str(file.absolute()), str(file)}:
                cause = cause.replace(spelling, _shown(file, shown_names))
        hint = _read_hint(model_format(path), "OpConversionFailure" in str(exc), option_names)
        raise ModelReadError(
            f"OpenVINO cannot read model '{_shown(path, shown_names)}': {cause}. {hint}"
        ) from exc
    # benchmark_app names unnamed inputs after their node so they can be addressed.
    for port in model.inputs:
        if not port.get_names():
            port.set_names({port.node.get_friendly_name()})
    return model


def port_info(port: ov.Output) -> PortInfo:
    try:
        layout = port.node.get_layout().to_string() if hasattr(port.node, "get_layout") else ""
    except Exception:
        layout = ""
    return PortInfo(
        name=port.get_any_name() if port.get_names() else port.node.get_friendly_name(),
        shape=port.get_partial_shape().to_string(),
        element_type=port.get_element_type().get_type_name(),
        layout="" if layout == "[...]" else layout,
    )


def describe(model: ov.Model, path: Path) -> ModelDescription:
    files = model_files(path)
    return ModelDescription(
        name=model.get_friendly_name() or path.stem,
        format=model_format(path),
        files=[
            ModelFile(name=f.name, size_bytes=f.stat().st_size, sha256=file_sha256(f))
            for f in files
        ],
        inputs=[port_info(p) for p in model.inputs],
        outputs=[port_info(p) for p in model.outputs],
    )


def _read_hint(fmt: str, conversion_failed: bool, style: OptionNames) -> str:
    """What to check when OpenVINO cannot read a model, for its format."""
    extension = option_name("extension_paths", style)
    version = ov.get_version().split("-")[0]
    if fmt == "openvino_ir":
        return (
            "Check that the files are complete (a truncated .bin or a .bin from another "
            "model gives this) and that the .xml is an OpenVINO IR."
        )
    if fmt == "onnx" and conversion_failed:
        return (
            f"OpenVINO {version} could not convert these ONNX operators. The usual causes: an "
            "operator or opset newer than this OpenVINO supports (export with an older opset), "
            "a custom operator, which needs the extension library that converts it "
            f"({extension}), or a tensor of unknown rank (export with static ranks, e.g. "
            "fixed input shapes)."
        )
    if fmt == "onnx":
        return (
            "Check that the file is a complete ONNX model (onnx.checker.check_model says "
            "what is wrong with it)."
        )
    if fmt == "tflite" and conversion_failed:
        return (
            f"OpenVINO {version} has no converter for this TensorFlow Lite operator: custom "
            "operators (and builtins newer than this OpenVINO) are not supported. Convert the "
            "model with TensorFlow Lite's builtin operators only, or load an extension "
            f"library that converts the operator ({extension})."
        )
    if fmt == "tflite":
        return "Check that the file is a complete TensorFlow Lite (.tflite) model."
    if conversion_failed:
        return (
            f"OpenVINO {version} could not convert these operators: a custom or unsupported "
            f"operator needs an extension library that converts it ({extension}), or a model "
            "exported without it."
        )
    return f"Check that the file is complete and in a format OpenVINO {version} reads."


def describe_model(
    path: Path,
    *,
    shown_names: dict[str, str] | None = None,
    option_names: OptionNames = "cli",
) -> ModelDescription:
    """Read a model and describe its files, inputs and outputs (no device is touched).

    Messages name files by `shown_names` (stored name -> the client's) and options in the
    `option_names` style.
    """
    model = read_model(ov.Core(), path, shown_names=shown_names, option_names=option_names)
    return describe(model, path)


# ---------------------------------------------------------------- per-input arguments
_PER_INPUT = re.compile(r"\s*([^\[\],]*?)\s*\[([^\]]*)\]\s*(?:,|$)")


def parse_per_input(
    text: str, option: str, input_names: list[str], style: OptionNames = "cli"
) -> dict[str, str]:
    """Parse `[v]`, `v` (layout only) or `name[v],name2[v2]` into {input name: v}.

    `option` is the BenchmarkSpec field (`shape`, `data_shape`, `layout`), named in messages
    in `style`. A value without a name applies to every input.
    """
    text = text.strip()
    shown = option_name(option, style)
    if option == "layout" and "[" not in text:
        return dict.fromkeys(input_names, text)
    matches = list(_PER_INPUT.finditer(text))
    if not matches or "".join(m.group(0) for m in matches).strip() != text:
        raise InputError(
            f"Cannot parse {shown} '{text}'. Use '[1,3,224,224]' for every input or "
            f"'name[1,3,224,224],other[1,4]' per input (inputs: {', '.join(input_names)})."
        )
    result: dict[str, str] = {}
    for match in matches:
        name, value = match.group(1), match.group(2)
        if not name:
            result.update(dict.fromkeys(input_names, value))
        elif name in input_names:
            result[name] = value
        else:
            raise InputError(
                f"{shown} names input '{name}', which the model does not have. "
                f"Its inputs are: {', '.join(input_names)}."
            )
    return result


def parse_partial_shape(
    value: str, option: str, input_name: str, style: OptionNames = "cli"
) -> ov.PartialShape:
    text = value.strip()
    shown = option_name(option, style)
    if not re.fullmatch(r"[\d?\-.\s,]*", text):
        raise InputError(
            f"{shown} for input '{input_name}': '{value}' is not a shape. "
            "Use comma-separated dimensions such as 1,3,224,224 (? or -1 for dynamic, 1..10 for a range)."
        )
    try:
        return ov.PartialShape(f"[{text}]")
    except Exception as exc:
        raise InputError(
            f"{shown} for input '{input_name}': '{value}' is not a shape: {exc}"
        ) from exc


@dataclass
class ResolvedInputs:
    slots: list[InputSlot]
    dynamic: bool = False
    reshape_ms: float | None = None
    warnings: list[str] = field(default_factory=list)


def resolve_inputs(
    model: ov.Model,
    shape: str | None,
    data_shape: str | None,
    layout: str | None,
    batch: int | None,
    option_names: OptionNames = "cli",
) -> ResolvedInputs:
    """Work out every input's static shape, layout and kind, reshaping the model when asked.

    `dynamic` tells whether the compiled model stays dynamic (fed through -data_shape).
    Messages name the options in the `option_names` style.
    """
    style = option_names
    names = [p.get_any_name() for p in model.inputs]
    shapes = {
        n: parse_partial_shape(v, "shape", n, style)
        for n, v in _per_input(shape, "shape", names, style).items()
    }
    data_shapes = {
        n: parse_partial_shape(v, "data_shape", n, style)
        for n, v in _per_input(data_shape, "data_shape", names, style).items()
    }
    layouts = _per_input(layout, "layout", names, style)
    layout_option = option_name("layout", style)
    warns: list[str] = []

    partial: dict[str, ov.PartialShape] = {}
    slot_layouts: dict[str, ov.Layout] = {}
    reshape = bool(shapes)
    batch_applied = False
    for port in model.inputs:
        name = port.get_any_name()
        pshape = shapes.get(name, port.get_partial_shape())
        if name in layouts:
            try:
                port_layout = ov.Layout(layouts[name])
            except Exception as exc:
                raise InputError(
                    f"{layout_option} for input '{name}': '{layouts[name]}' is not a layout: {exc}"
                ) from exc
            if (
                port_layout.to_string() != "[...]"
                and len(port_layout.to_string().split(",")) != pshape.rank.get_length()
            ):
                raise InputError(
                    f"{layout_option} '{layouts[name]}' has a different rank than input "
                    f"'{name}' {pshape.to_string()}."
                )
        elif port.node.get_layout().to_string() != "[...]":
            port_layout = port.node.get_layout()
        else:
            port_layout = guess_layout(pshape)
        if batch and port_layout.has_name("N"):
            index = port_layout.get_index_by_name("N")
            if pshape[index] != ov.Dimension(batch):
                pshape = ov.PartialShape(pshape)
                pshape[index] = ov.Dimension(batch)
                reshape = True
            batch_applied = True
        partial[name] = pshape
        slot_layouts[name] = port_layout
    if batch and not batch_applied:
        original = {p.get_any_name(): p.get_partial_shape() for p in model.inputs}
        raise InputError(batch_without_n_advice(partial, original, style))
    reshape_ms = None
    if reshape:
        started = time.perf_counter()
        try:
            model.reshape({model.input(n): s for n, s in partial.items()})
        except Exception as exc:
            raise InputError(
                f"Cannot reshape the model to {_fmt_shapes(partial)}: {openvino_message(exc)}"
            ) from exc
        reshape_ms = (time.perf_counter() - started) * 1000

    data_shape_option = option_name("data_shape", style)
    dynamic_ports = [
        (p.get_any_name(), p.get_partial_shape())
        for p in model.inputs
        if p.get_partial_shape().is_dynamic
    ]
    for name, pshape in dynamic_ports:
        given = data_shapes.get(name)
        if given is not None and (given.is_dynamic or not pshape.compatible(given)):
            raise InputError(
                f"{data_shape_option} {given.to_string()} for input '{name}' must be static "
                f"and compatible with its shape {pshape.to_string()}."
            )
    missing = [(name, pshape) for name, pshape in dynamic_ports if name not in data_shapes]
    if missing:
        raise DynamicShapeError(
            dynamic_shape_advice(missing, dynamic_ports, data_shapes, slot_layouts, style)
        )

    slots: list[InputSlot] = []
    for port in model.inputs:
        name = port.get_any_name()
        pshape = port.get_partial_shape()
        if pshape.is_dynamic:
            static = [d.get_length() for d in data_shapes[name]]
        else:
            if name in data_shapes:
                warns.append(
                    f"Input '{name}' has a static shape; its {data_shape_option} is ignored."
                )
            static = [d.get_length() for d in pshape]
        port_layout = slot_layouts[name]
        slot = InputSlot(
            name=name, shape=static, element_type=port.get_element_type(), layout=port_layout
        )
        ps_static = ov.PartialShape(static)
        if is_image_input(port_layout, ps_static):
            slot.kind = "image"
        elif is_image_info_input(port_layout, ps_static):
            slot.kind = "image_info"
        slots.append(slot)
    return ResolvedInputs(
        slots=slots, dynamic=bool(dynamic_ports), reshape_ms=reshape_ms, warnings=warns
    )


def _per_input(
    text: str | None, option: str, names: list[str], style: OptionNames
) -> dict[str, str]:
    return parse_per_input(text, option, names, style) if text else {}


def _fmt_shapes(shapes: dict[str, ov.PartialShape]) -> str:
    return ", ".join(f"'{n}': {s.to_string()}" for n, s in shapes.items())


def apply_preprocessing(model: ov.Model, slots: list[InputSlot]) -> ov.Model:
    """Image inputs take u8 tensors, converted inside the model (as benchmark_app does)."""
    ppp = ov.preprocess.PrePostProcessor(model)
    for slot in slots:
        if slot.kind == "image":
            ppp.input(slot.name).tensor().set_element_type(ov.Type.u8)
            slot.element_type = ov.Type.u8
        if slot.layout.to_string() != "[...]":
            ppp.input(slot.name).model().set_layout(slot.layout)
    return ppp.build()


def batch_size(slots: list[InputSlot], option_names: OptionNames = "cli") -> int:
    """The N dimension the inputs agree on (1 when no input has one), as benchmark_app."""
    batches = {slot.batch for slot in slots if slot.layout.has_name("N")}
    if len(batches) > 1:
        raise InputError(
            f"Inputs disagree on the batch size: {sorted(batches)}. "
            f"Set it with {option_name('batch', option_names)}."
        )
    return batches.pop() if batches else 1
