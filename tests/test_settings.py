"""Settings: defaults, the OVBENCH_ environment, `ovbench serve --help`, and `make serve`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE, Popen
from typing import IO

import httpx
import pytest

from app.engine.integrity import HostGuardRules, StabilityRules
from app.engine.spec import DEFAULT_DURATION_S
from app.serve import main as serve_main
from app.settings import Settings, get_settings
from tests.e2e.conftest import RUN_LOCK_ENV, START_TIMEOUT_S, free_port, own_run_lock, wait_for

ROOT = Path(__file__).resolve().parents[1]
# Make variables and environment that would steer `make` itself: the tests say what they mean.
_MAKE_ENV = ("HOST", "PORT", "DATA_DIR", "MODELS_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"OVBENCH_{name.upper()}", raising=False)
    settings = get_settings()
    assert (settings.host, settings.port, settings.data_dir) == ("127.0.0.1", 8000, Path("var"))
    assert settings.max_upload_bytes == 2 * 1024**3 and settings.max_queue == 1000
    assert settings.default_duration_s == DEFAULT_DURATION_S


def test_environment_is_read_when_settings_are_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OVBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OVBENCH_MAX_QUEUE", "7")
    monkeypatch.setenv("OVBENCH_DEFAULT_DURATION_S", '{"CPU": 5}')
    settings = get_settings(port=9999)
    assert (settings.data_dir, settings.max_queue, settings.port) == (tmp_path, 7, 9999)
    assert settings.default_duration_s == {"CPU": 5.0}


def test_the_trust_thresholds_are_nested_settings_one_variable_per_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OVBENCH_GUARD__SAMPLE_S", raising=False)  # tests/conftest.py's
    monkeypatch.setenv("OVBENCH_STABILITY__CV_REPEATS_MAX", "0.2")
    monkeypatch.setenv("OVBENCH_GUARD__WAIT_S", "3")
    settings = get_settings()
    assert settings.stability.cv_repeats_max == 0.2
    assert settings.stability.drift_max == StabilityRules().drift_max  # the others keep theirs
    assert (settings.guard.wait_s, settings.guard.sample_s) == (3.0, HostGuardRules().sample_s)
    with pytest.raises(SystemExit):
        serve_main(["--help"])
    out = capsys.readouterr().out
    assert "OVBENCH_STABILITY__CV_REPEATS_MAX" in out and "(now: 0.2)" in out
    for rules, prefix in ((StabilityRules, "STABILITY"), (HostGuardRules, "GUARD")):
        for name in rules.model_fields:
            assert f"OVBENCH_{prefix}__{name.upper()}" in out


def test_serve_help_lists_every_setting_with_its_env_var(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--data-dir"):
        assert flag in out
    for name, field in Settings.model_fields.items():
        nested = isinstance(field.default_factory, type)  # listed field by field
        assert (f"OVBENCH_{name.upper()}__" if nested else f"OVBENCH_{name.upper()}") in out


def _make(target: str, *args: str, env: dict[str, str], stdout: int | IO[bytes]) -> Popen[bytes]:
    """`make TARGET ARGS` in the checkout with this venv (never reinstalling it), in its own
    process group; stderr goes with stdout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OVBENCH_")}
    clean = {k: v for k, v in clean.items() if k not in _MAKE_ENV}
    command = ["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed-stamp"]
    command += [f"BIN={Path(sys.executable).parent}", target, *args]
    return Popen(
        command,
        env={**clean, **env},
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@needs_make
@pytest.mark.parametrize("via", ["environment", "make variables"])
def test_make_serve_takes_the_ovbench_settings(tmp_path: Path, via: str) -> None:
    """`OVBENCH_PORT=N make serve` serves on N, as `ovbench serve` would; `PORT=N` too."""
    port, data_dir, log_path = free_port(), tmp_path / "data", tmp_path / "serve.log"
    if via == "environment":
        env = {
            "OVBENCH_PORT": str(port),
            "OVBENCH_DATA_DIR": str(data_dir),
            "OVBENCH_HOST": "127.0.0.1",
            "OVBENCH_API_TOKENS": "s3cret",  # any other setting gets through as well
        }
        args: tuple[str, ...] = ()
    else:
        env, args = {}, (f"PORT={port}", f"DATA_DIR={data_dir}")
    env[RUN_LOCK_ENV] = str(own_run_lock(data_dir))  # never the host's lock
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        make = _make("serve", *args, env=env, stdout=log)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:

            def healthy() -> bool:
                if make.poll() is not None:
                    raise AssertionError(f"make serve exited:\n{log_path.read_text()}")
                return client.get("/healthz").status_code == 200

            wait_for(healthy, START_TIMEOUT_S, f"{url}/healthz (log: {log_path})")
            if via == "environment":
                assert client.get("/models").status_code == 401
                assert (
                    client.get("/models", headers={"Authorization": "Bearer s3cret"}).status_code
                    == 200
                )
        assert (data_dir / "ovbench.db").is_file()
        log = log_path.read_text()
        line = f"ovbench serving on {url} (data dir {data_dir})"
        assert line in log, log
        # Said once uvicorn serves, not before.
        assert log.index("Started server process") < log.index(line), log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(timeout=15)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(make.pid, signal.SIGKILL)
            make.wait()


@needs_make
def test_make_models_writes_models_and_images_into_the_data_dir(tmp_path: Path) -> None:
    make = _make("models", env={"OVBENCH_DATA_DIR": str(tmp_path)}, stdout=PIPE)
    out, _ = make.communicate(timeout=120)
    assert make.returncode == 0, out
    written = sorted(p.name for p in (tmp_path / "sample-models").iterdir())
    assert {"resnet50.xml", "tiny_cnn.bin", "red.png", "grey.png"} <= set(written), written


def test_serve_help_shows_the_database_url_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "OVBENCH_DATABASE_URL", "postgresql+psycopg://ovbench:s3cret@db:5432/ovbench"
    )
    with pytest.raises(SystemExit):
        serve_main(["--help"])
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert "postgresql+psycopg://ovbench:***@db:5432/ovbench" in out
    monkeypatch.delenv("OVBENCH_DATABASE_URL")
    assert get_settings().database_url is None  # unset: SQLite in the data dir
