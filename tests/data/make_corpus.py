"""The hostile-input corpus: broken and malicious requests, written as files by this script.

Every case is one complete HTTP request body (multipart built byte by byte, so file names can
carry NULs or path separators exactly as a hostile client would send them; or raw JSON) plus
a manifest entry: method, path, content type, and the 4xx statuses (and error code) the
service must answer with. Nothing binary is committed: `build_corpus(directory, tiny_xml)`
writes everything from a valid tiny IR, and `python -m tests.data.make_corpus OUT_DIR`
does the same from the command line (it generates the tiny model itself).

Job bodies contain the placeholder `__MODEL_ID__`, to be replaced by a real model's id.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_ID = "__MODEL_ID__"
BOUNDARY = "ovbench-corpus-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
JSON = "application/json"
# Text fields sent in the "thousands of parts" case (past every per-request part limit).
MANY_PARTS = 20_000

Part = tuple[str, bytes | None, bytes]  # (field name, raw file name or None for a text field, data)


@dataclass
class Case:
    """One hostile request and what the service must answer."""

    id: str
    path: str
    statuses: list[int]
    code: str | None = None
    content_type: str = MULTIPART
    method: str = "POST"
    body_file: str = ""
    message: str = ""  # a phrase the error message must contain


def multipart(parts: list[Part], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """A multipart/form-data body; file names go out byte for byte (no escaping)."""
    out = io.BytesIO()
    for name, filename, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
            out.write(disposition + b"\r\nContent-Type: application/octet-stream\r\n\r\n")
        else:
            out.write(disposition + b"\r\n\r\n")
        out.write(data + b"\r\n")
    if close:
        out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def files(*named: tuple[bytes, bytes], field_name: str = "file") -> list[Part]:
    return [(field_name, name, data) for name, data in named]


# --- file makers ----------------------------------------------------------------------------


def _with_prolog(xml: bytes, prolog: bytes) -> bytes:
    """Insert `prolog` (a DOCTYPE ...) right after the XML declaration."""
    head, sep, rest = xml.partition(b"?>")
    return head + sep + b"\n" + prolog + rest


BILLION_LAUGHS = b"""<!DOCTYPE net [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""
EXTERNAL_ENTITY = b"""<!DOCTYPE net [
 <!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
"""
EXTERNAL_DTD = b'<!DOCTYPE net SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
PARAMETER_ENTITY = b"""<!DOCTYPE net [
 <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">
 %remote;
]>
"""


def _use_entity(xml: bytes, entity: bytes) -> bytes:
    """Reference an entity in the network's name, where a parser would expand it."""
    return xml.replace(b'<net name="', b'<net name="' + entity, 1)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _image_bytes(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, fmt)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _job(**fields: object) -> bytes:
    return json.dumps({"model_id": MODEL_ID, "device": "CPU", "api": "sync", **fields}).encode()


# --- the corpus -----------------------------------------------------------------------------


def corpus_cases(xml: bytes, weights: bytes) -> list[tuple[Case, Callable[[], bytes]]]:
    """(case, body maker) for every hostile request, given a valid IR's bytes."""
    rng = np.random.default_rng(4)
    garbage = rng.bytes(4096)
    png = _image_bytes("PNG")
    cases: list[tuple[Case, Callable[[], bytes]]] = []

    def add(case: Case, body: Callable[[], bytes]) -> None:
        cases.append((case, body))

    def model(
        case_id: str, xml_bytes: bytes, bin_bytes: bytes | None, code: str, message: str = ""
    ) -> None:
        parts = [(b"model.xml", xml_bytes)] + ([(b"model.bin", bin_bytes)] if bin_bytes else [])
        case = Case(case_id, "/models", [422], code, message=message)
        add(case, lambda: multipart(files(*parts)))

    # Models: broken and malicious IR / ONNX.
    model("bin_truncated", xml, weights[: len(weights) // 2], "model_unreadable", "needs exactly")
    model("bin_truncated_by_4", xml, weights[:-4], "model_unreadable", "needs exactly")
    add(
        Case("bin_empty", "/models", [422], "empty_file"),
        lambda: multipart(files((b"model.xml", xml), (b"model.bin", b""))),
    )
    model("bin_too_large", xml, weights + b"\x00" * 4096, "model_unreadable", "needs exactly")
    model(
        "bin_of_other_size",
        xml,
        weights[: len(weights) // 3] * 4,
        "model_unreadable",
        "needs exactly",
    )
    model(
        "xml_malformed",
        b'<?xml version="1.0"?>\n<net name="x" version="11"><layers><layer',
        weights,
        "model_unreadable",
    )
    model("xml_garbage", garbage, weights, "model_unreadable")
    add(
        Case("xml_empty", "/models", [422], "empty_file"),
        lambda: multipart(files((b"model.xml", b""), (b"model.bin", weights))),
    )
    model(
        "xml_doctype",
        _with_prolog(xml, b"<!DOCTYPE net>\n"),
        weights,
        "model_unreadable",
        "refused before parsing",
    )
    model(
        "xml_billion_laughs",
        _use_entity(_with_prolog(xml, BILLION_LAUGHS), b"&lol9;"),
        weights,
        "model_unreadable",
        "refused before parsing",
    )
    model(
        "xml_external_entity",
        _use_entity(_with_prolog(xml, EXTERNAL_ENTITY), b"&xxe;"),
        weights,
        "model_unreadable",
        "refused before parsing",
    )
    model(
        "xml_external_dtd",
        _with_prolog(xml, EXTERNAL_DTD),
        weights,
        "model_unreadable",
        "refused before parsing",
    )
    model(
        "xml_parameter_entity",
        _with_prolog(xml, PARAMETER_ENTITY),
        weights,
        "model_unreadable",
        "refused before parsing",
    )
    model(
        "xml_doctype_utf16",
        _with_prolog(xml, b"<!DOCTYPE net>\n").decode().encode("utf-16"),
        weights,
        "model_unreadable",
        "not UTF-8",
    )
    model(
        "xml_processing_instruction",
        _with_prolog(xml, b'<?xml-stylesheet href="http://127.0.0.1:9/x.xsl"?>\n'),
        weights,
        "model_unreadable",
        "refused before parsing",
    )
    add(
        Case("xml_without_bin", "/models", [422], "ir_weights_missing"),
        lambda: multipart(files((b"model.xml", xml))),
    )
    add(
        Case("onnx_garbage", "/models", [422], "model_unreadable"),
        lambda: multipart(files((b"model.onnx", garbage))),
    )
    add(
        Case("onnx_zero_bytes", "/models", [422], "empty_file"),
        lambda: multipart(files((b"model.onnx", b""))),
    )
    add(
        Case("onnx_truncated_protobuf", "/models", [422], "model_unreadable"),
        lambda: multipart(files((b"model.onnx", b"\x08\x07\x12\x0dovbench-tests\x3a\xff\xff"))),
    )
    # File names.
    add(
        Case("name_path_traversal_model", "/models", [415], "unsupported_model_format"),
        lambda: multipart(files((b"../../etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"))),
    )
    add(
        Case("name_path_traversal_dataset", "/datasets", [415], "unsupported_input_type"),
        lambda: multipart(files((b"../../etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"))),
    )
    add(
        Case("name_with_nul_model", "/models", [422], "invalid_filename"),
        lambda: multipart(files((b"model\x00.xml", xml), (b"model\x00.bin", weights))),
    )
    add(
        Case("name_with_nul_dataset", "/datasets", [422], "invalid_filename"),
        lambda: multipart(files((b"a.png\x00.sh", png))),
    )
    add(
        Case("name_10000_chars_model", "/models", [400, 422]),
        lambda: multipart(files((b"m" * 9996 + b".xml", xml), (b"m" * 9996 + b".bin", weights))),
    )
    add(
        Case("name_10000_chars_dataset", "/datasets", [400, 422]),
        lambda: multipart(files((b"i" * 9996 + b".png", png))),
    )
    add(
        Case("name_300_chars_dataset", "/datasets", [422], "filename_too_long"),
        lambda: multipart(files((b"i" * 296 + b".png", png))),
    )
    add(
        Case("name_with_newline_model", "/models", [422], "invalid_filename"),
        lambda: multipart(files((b"model\n.onnx", garbage))),
    )
    # Images and arrays.
    add(
        Case("image_not_an_image", "/datasets", [422], "invalid_image"),
        lambda: multipart(files((b"photo.png", garbage))),
    )
    add(
        Case("image_text_as_jpeg", "/datasets", [422], "invalid_image"),
        lambda: multipart(files((b"photo.jpg", b"I am not a JPEG\n" * 64))),
    )
    add(
        Case("image_zero_bytes", "/datasets", [422], "invalid_image"),
        lambda: multipart(files((b"empty.png", b""))),
    )
    add(
        Case("image_truncated_png", "/datasets", [422], "invalid_image"),
        lambda: multipart(files((b"cut.png", _image_bytes("PNG", (64, 64))[:60]))),
    )
    add(
        Case("image_bomb_100000x100000", "/datasets", [422], "invalid_image", message="pixels"),
        lambda: multipart(files((b"bomb.png", png_header_only(100_000, 100_000)))),
    )
    add(
        Case("image_bomb_9000x9000", "/datasets", [422], "invalid_image", message="9000x9000"),
        lambda: multipart(files((b"bomb.png", png_header_only(9_000, 9_000)))),
        # 81 Mpx: under Pillow's own bomb limit, over the engine's 64 Mpx.
    )
    add(
        Case("image_gif_named_png", "/datasets", [422], "invalid_image"),
        lambda: multipart(files((b"anim.png", _image_bytes("GIF")))),
    )
    add(
        Case("npy_garbage", "/datasets", [422], "invalid_input"),
        lambda: multipart(files((b"input.npy", garbage))),
    )
    add(
        Case("npy_pickled_objects", "/datasets", [422], "invalid_input"),
        lambda: multipart(
            files((b"input.npy", _npy_bytes(np.array([{"a": 1}], dtype=object), True)))
        ),
    )
    add(
        Case("dataset_executable", "/datasets", [415], "unsupported_input_type"),
        lambda: multipart(files((b"payload.exe", b"MZ" + garbage))),
    )
    # Multipart framing.
    add(
        Case("multipart_thousands_of_parts", "/models", [413], "too_many_parts"),
        lambda: multipart([("name", None, b"x")] * MANY_PARTS),
    )
    add(
        Case("multipart_thousands_of_parts_dataset", "/datasets", [413], "too_many_parts"),
        lambda: multipart([("x", None, b"1")] * MANY_PARTS),
    )
    add(
        Case("multipart_thousands_of_parts_job", "/jobs", [413], "too_many_parts"),
        lambda: multipart([("x", None, b"1")] * MANY_PARTS),
    )
    add(
        Case("multipart_unterminated", "/models", [400]),
        lambda: multipart(files((b"model.xml", xml)), close=False)[:-200],
    )
    add(
        Case("multipart_no_boundary", "/models", [400], content_type="multipart/form-data"),
        lambda: multipart(files((b"model.xml", xml))),
    )
    add(
        Case("multipart_wrong_boundary", "/datasets", [400]),
        lambda: multipart(files((b"a.png", png)), boundary="another-boundary"),
    )
    add(
        Case("multipart_huge_text_field", "/models", [413], "payload_too_large"),
        lambda: multipart([("name", None, b"n" * (128 * 1024))]),
    )
    add(
        Case("models_not_multipart", "/models", [415], content_type="text/plain"),
        lambda: b"model.xml",
    )
    add(
        Case("dataset_no_files", "/datasets", [422], "no_files"),
        lambda: multipart([]),
    )
    # Jobs: JSON of the wrong shape, absurd numbers, unknown devices, bad shapes.
    json_cases: list[tuple[str, list[int], str | None, bytes]] = [
        ("json_not_json", [400], "invalid_json", b'{"model_id": '),
        ("json_deeply_nested", [400], "invalid_json", b"[" * 200_000 + b"]" * 200_000),
        ("json_too_large", [413], "payload_too_large", _job(layout="N" * (2 * 1024 * 1024))),
        ("json_array", [422], "validation_error", b"[1, 2, 3]"),
        ("json_null", [422], "validation_error", b"null"),
        (
            "json_wrong_types",
            [422],
            "validation_error",
            json.dumps({"model_id": 5, "device": ["CPU"], "api": True, "niter": "many"}).encode(),
        ),
        ("json_unknown_field", [422], "validation_error", _job(rm_rf=True)),
        ("niter_1e18", [422], "validation_error", _job(niter=10**18)),
        ("niter_2e64", [422], "validation_error", _job(niter=2**64)),
        ("nireq_1e6", [422], "validation_error", _job(api="async", nireq=10**6)),
        ("duration_1e9", [422], "validation_error", _job(duration_s=10**9)),
        ("duration_infinite", [422], "validation_error", _job(duration_s=1e999)),
        ("duration_nan", [422], "validation_error", _job().replace(b"}", b', "duration_s": NaN}')),
        ("batch_negative", [422], "validation_error", _job(batch=-1)),
        ("batch_huge", [422], "validation_error", _job(batch=10**7)),
        ("nthreads_huge", [422], "validation_error", _job(nthreads=10**9)),
        ("latency_percentile_zero", [422], "validation_error", _job(latency_percentile=0)),
        ("device_unknown", [422], "device_not_available", _job(device="FPGA")),
        ("device_injection", [422], "validation_error", _job(device="CPU; rm -rf /")),
        ("device_empty", [422], "validation_error", _job(device="")),
        ("nstreams_garbage", [422], "validation_error", _job(nstreams="4; DROP TABLE jobs")),
        ("shape_garbage", [422], "validation_error", _job(shape="[1,3,abc]")),
        ("shape_unbracketed", [422], "validation_error", _job(shape="1,3,224,224")),
        ("shape_unclosed", [422], "validation_error", _job(shape="input[1,3,224")),
        ("data_shape_garbage", [422], "validation_error", _job(data_shape="[[[]]]")),
        ("extensions_when_disabled", [403], "extensions_disabled", _job(extensions=["libx.so"])),
        ("gpu_config_when_disabled", [403], "extensions_disabled", _job(gpu_config="k.xml")),
        ("extensions_wrong_type", [422], "validation_error", _job(extensions="libx.so")),
    ]
    for case_id, statuses, code, body in json_cases:
        add(Case(case_id, "/jobs", statuses, code, content_type=JSON), lambda body=body: body)
    add(
        Case("job_form_niter_1e18", "/jobs", [422], "validation_error"),
        lambda: multipart(
            [
                ("model_id", None, MODEL_ID.encode()),
                ("device", None, b"CPU"),
                ("api", None, b"sync"),
                ("niter", None, b"1" + b"0" * 18),
            ]
        ),
    )
    add(
        Case("job_form_params_deeply_nested", "/jobs", [422], "invalid_json"),
        lambda: multipart([("params", None, b"[" * 30_000 + b"]" * 30_000)]),
    )
    for case_id, query in [
        ("jobs_offset_2e70", f"offset={2**70}"),
        ("jobs_limit_1e30", f"limit={10**30}"),
    ]:
        add(
            Case(case_id, f"/jobs?{query}", [422], "validation_error", method="GET"),
            lambda: b"",
        )
    add(
        Case("job_wrong_content_type", "/jobs", [415], content_type="application/xml"),
        lambda: b"<job/>",
    )
    return cases


def build_corpus(directory: Path, tiny_xml: Path) -> dict[str, Case]:
    """Write every case's body under `directory` and a `corpus.json` manifest; {id: case}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    xml, weights = tiny_xml.read_bytes(), tiny_xml.with_suffix(".bin").read_bytes()
    built: dict[str, Case] = {}
    for case, body in corpus_cases(xml, weights):
        assert case.id not in built, f"duplicate case id {case.id}"
        case.body_file = f"{case.id}.body"
        (directory / case.body_file).write_bytes(body())
        built[case.id] = case
    manifest = [asdict(case) for case in built.values()]
    (directory / "corpus.json").write_text(json.dumps(manifest, indent=1))
    return built


def case_ids() -> list[str]:
    """The ids of every case, without writing anything (for test parametrisation)."""
    return [case.id for case, _ in corpus_cases(b'<?xml version="1.0"?><net name="x"/>', b"\0")]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.data.make_corpus OUT_DIR", file=sys.stderr)
        return 2
    from tests.factories import write_tiny_model

    out = Path(argv[0])
    built = build_corpus(out, write_tiny_model(out / "tiny_model"))
    print(f"{len(built)} cases written to {out} (manifest: {out / 'corpus.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
