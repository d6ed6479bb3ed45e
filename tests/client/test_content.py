"""app.client.content computes what the server computes on upload, without OpenVINO or the
store: these tests hold it to the server's own code (app.services.ingest, the engine's
suffixes), so a change there that the client does not follow fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import app.client
from app.api.schemas import JobCreate, JobStatus
from app.cli_remote_jobs import JOB_STATUSES
from app.client import content
from app.engine.defaults import RUN_OPTIONS
from app.engine.inputs import IMAGE_EXTENSIONS, NUMPY_EXTENSIONS
from app.engine.model import MODEL_FORMATS
from app.services import ingest


def test_suffixes_are_the_engines() -> None:
    assert set(MODEL_FORMATS) == content.MODEL_SUFFIXES
    assert content.IMAGE_EXTENSIONS == IMAGE_EXTENSIONS
    assert content.NUMPY_EXTENSIONS == NUMPY_EXTENSIONS


def test_the_cli_names_every_job_status_and_maps_run_options_to_job_fields() -> None:
    assert get_args(JobStatus) == JOB_STATUSES
    assert set(RUN_OPTIONS) <= set(JobCreate.model_fields)


def test_model_digest_is_the_servers(tiny_model: Path) -> None:
    files = content.model_files(content.model_paths(tiny_model))
    assert files is not None
    assert [f.stored_name for f in files] == ["model.xml", "model.bin"]
    as_stored: list[dict[str, object]] = [
        {"name": f.stored_name, "sha256": f.sha256} for f in files
    ]
    assert content.model_sha256(files) == ingest.model_content_sha256(as_stored)
    # The digest is over the content and the canonical names, not the names given here.
    assert content.model_sha256(reversed(files)) == content.model_sha256(files)


def test_model_paths_take_the_bin_beside_an_xml_and_name_what_is_missing(
    tmp_path: Path,
) -> None:
    xml = tmp_path / "net.xml"
    xml.write_text("<net/>")
    with pytest.raises(FileNotFoundError, match="net.bin"):
        content.model_paths(xml)
    with pytest.raises(FileNotFoundError, match="nothere.onnx"):
        content.model_paths(tmp_path / "nothere.onnx")
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"x")
    assert content.model_paths(onnx) == [onnx]


def test_sets_the_server_would_refuse_have_no_digest(tmp_path: Path) -> None:
    """The upload then goes ahead and the server's 4xx says what is wrong."""
    paths = {}
    for name in ("a.xml", "a.bin", "b.onnx", "c.txt"):
        paths[name] = tmp_path / name
        paths[name].write_bytes(name.encode())
    assert content.model_files([paths["a.xml"]]) is None  # IR without its weights
    assert content.model_files([paths["a.xml"], paths["a.bin"], paths["b.onnx"]]) is None
    assert content.model_files([paths["b.onnx"], paths["c.txt"]]) is None
    planned = content.model_files([paths["b.onnx"]])
    assert planned is not None and [f.stored_name for f in planned] == ["model.onnx"]


@pytest.mark.parametrize(
    "names",
    [
        ["a.png", "b.png"],
        ["my image (1).png", "..hidden.jpg", "ü.bmp"],
        ["x.png", "x.png", "x.PNG", "x_2.png"],
    ],
)
def test_dataset_names_are_the_servers(tmp_path: Path, names: list[str]) -> None:
    paths = []
    for index, name in enumerate(names):
        folder = tmp_path / str(index)  # the same name may come from two folders
        folder.mkdir()
        paths.append(folder / name)
        paths[-1].write_bytes(bytes([index]))
    stored = [f.stored_name for f in content.dataset_files(paths)]
    # ingest_dataset's naming, step by step, as the server applies it.
    expected: list[str] = []
    for index, name in enumerate(names):
        safe = ingest.safe_name(name, f"file{index}")
        suffix = Path(safe).suffix.lower()
        stem, candidate, n = safe[: -len(suffix)], safe, 1
        while candidate in expected:
            n += 1
            candidate = f"{stem}_{n}{suffix}"
        expected.append(candidate)
    assert stored == expected
    assert len(set(stored)) == len(stored)


def test_input_folders_give_their_images_and_arrays_sorted(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.JPG", "x.npy", "notes.txt", "sub/c.png"):
        (folder / name).write_bytes(b"0")
    single = tmp_path / "one.bmp"
    single.write_bytes(b"0")
    assert content.input_paths([folder, single]) == [
        folder / "a.JPG",
        folder / "b.png",
        folder / "x.npy",
        single,
    ]


def test_input_paths_name_what_is_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere"):
        content.input_paths([tmp_path / "nothere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty' has no images"):
        content.input_paths([tmp_path / "empty"])


def test_the_client_imports_no_store_services_or_web_framework() -> None:
    """The client is the contract's other side: the wire models only (STYLE: app/client)."""
    forbidden = ("app.store", "app.services", "app.worker", "app.dispatch", "fastapi", "starlette")
    package = Path(app.client.__file__).parent
    for source in sorted(package.glob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{source.name} imports {name}"


def test_importing_the_client_loads_no_server_side_module() -> None:
    """What `import app.client` really loads (its wire models included): no web framework,
    store, services or OpenVINO, so a remote command starts in well under a second."""
    code = (
        "import sys, app.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'openvino', 'sqlalchemy') "
        "or m.startswith(('app.store', 'app.services', 'app.worker', 'app.dispatch'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
