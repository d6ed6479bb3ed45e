"""Settings: defaults, the OVBENCH_ environment, and `ovbench serve --help`."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.spec import DEFAULT_DURATION_S
from app.serve import main as serve_main
from app.settings import Settings, get_settings


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


def test_serve_help_lists_every_setting_with_its_env_var(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--data-dir"):
        assert flag in out
    for name in Settings.model_fields:
        assert f"OVBENCH_{name.upper()}" in out
