"""README.md runs as written: its shell commands, in order, against a live `ovbench serve`.

Every line starting with `$ ` in a ```console block is a command (a trailing `\\` continues it
on the next line); the lines up to the next command are the output the README shows. A
block right after `<!-- readme-test: skip -->` is left out (Docker, for one); the commands of a
block right after `<!-- readme-test: fails -->` must fail, and print every `[ ERROR ]` line the
README shows of them exactly as shown (error messages are advice users follow). The commands
run in one bash session, in a temp dir, with this venv's `bin` on PATH (what
`. .venv/bin/activate` does) and the README's `localhost:8000` pointed at a real server on a
free port of 127.0.0.1 (`make serve` itself is what the server fixture stands in for).

Each command must exit 0, and its real output must carry what the README shows of it: the
JSON keys, the statuses, HTTP status lines, `name:` lines (headers, files written), the
labels of `[ INFO ]`-style lines; and, when the output comes from a CPU of the same name as
the README's, the same inference precision (the README is pasted from this project's host).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP_MARKER = "<!-- readme-test: skip -->"
FAILS_MARKER = "<!-- readme-test: fails -->"
README_ADDRESSES = ("localhost:8000", "127.0.0.1:8000")
SCRIPT_TIMEOUT_S = 180
_END = "@@readme-test-end"

_JSON_KEY = re.compile(r'"([A-Za-z_]\w*)"\s*:')
# Keys whose values do not depend on the host or the run, compared as sets of values.
_STABLE_VALUES = ("status", "api", "device", "format", "kind", "source", "code", "element_type")
_HTTP_STATUS = re.compile(r"^HTTP/1\.1 \d{3}", re.MULTILINE)
_NAME_LINE = re.compile(r"^([A-Za-z][\w.-]*): ")
_LOG_LINE = re.compile(r"^\[ ?[A-Z][A-Z ]*\]")
_LOG_LABEL_END = re.compile(r"[\d(:]")
_CPU_NAME = (
    re.compile(r"Device: \w+ \(([^)]*)\)"),
    re.compile(r'"device_full_name":\s*"([^"]*)"'),
)
_PRECISION = (
    re.compile(r"inference precision (\w+)"),
    re.compile(r'"inference_precision":\s*"(\w+)"'),
)


@dataclass
class Command:
    line: int  # README line of the `$ `
    text: str  # as written, continuation lines included
    shown: str  # the output the README shows under it
    fails: bool = False  # in a block marked to fail


def readme_commands(text: str) -> list[Command]:
    """The `$ ` commands of README's ```console blocks not marked to skip, in order."""
    commands: list[Command] = []
    block: str | None = None  # None outside a fence; else "run", "fails", "skip" or "other"
    previous = ""  # the last non-blank line outside a fence
    current: Command | None = None  # the command whose output the next lines are
    continuing = False
    for number, line in enumerate(text.splitlines(), start=1):
        if block is None:
            if line.startswith("```"):
                marker = {SKIP_MARKER: "skip", FAILS_MARKER: "fails"}.get(previous.strip(), "run")
                block = marker if line.strip() == "```console" else "other"
            elif line.strip():
                previous = line
            continue
        if line.startswith("```"):
            block, previous, current, continuing = None, "", None, False
            continue
        if block not in ("run", "fails"):
            continue
        if continuing and current is not None:
            current.text += "\n" + line
        elif line.startswith("$ "):
            current = Command(number, line[2:], "", fails=block == "fails")
            commands.append(current)
        elif current is not None:
            current.shown += line + "\n"
        continuing = line.endswith("\\")
    return commands


def _script(commands: list[Command], port: int) -> str:
    """One bash script: each command, then a marker with its exit status; stop at a failure."""
    parts = ["set -o pipefail"]
    for index, command in enumerate(commands):
        text = command.text
        for address in README_ADDRESSES:
            text = text.replace(address, f"127.0.0.1:{port}")
        parts.append(text)
        ok = "[ $rc -ne 0 ] || exit 99" if command.fails else "[ $rc -eq 0 ] || exit $rc"
        parts.append(f"rc=$?; printf '\\n{_END} {index} %d\\n' $rc; {ok}")
    return "\n".join(parts) + "\n"


def _outputs(stdout: str) -> dict[int, tuple[int, str]]:
    """Command index -> (exit status, output), from the script's markers."""
    results: dict[int, tuple[int, str]] = {}
    output: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(_END + " "):
            _, index, rc = line.split()
            results[int(index)] = (int(rc), "\n".join(output).strip("\n"))
            output = []
        else:
            output.append(line)
    return results


def _values(pattern: re.Pattern[str], text: str) -> set[str]:
    return set(pattern.findall(text))


def _stable_values(key: str, text: str) -> set[str]:
    return _values(re.compile(rf'"{key}":\s*"([^"]*)"'), text)


def _found_in(patterns: tuple[re.Pattern[str], ...], text: str) -> set[str]:
    return set().union(*(_values(pattern, text) for pattern in patterns))


def missing_from(shown: str, real: str) -> list[str]:
    """What the README shows of a command's output that its real output lacks."""
    missing: list[str] = []
    real_lines = [line.lower() for line in real.splitlines()]
    for key in sorted(_values(_JSON_KEY, shown) - _values(_JSON_KEY, real)):
        missing.append(f"JSON key {key!r}")
    for key in _STABLE_VALUES:
        for value in sorted(_stable_values(key, shown) - _stable_values(key, real)):
            missing.append(f'"{key}": "{value}"')
    if _HTTP_STATUS.findall(shown) != _HTTP_STATUS.findall(real):
        missing.append(f"HTTP status lines {_HTTP_STATUS.findall(shown)}")
    for line in shown.splitlines():
        if match := _NAME_LINE.match(line):
            start = match.group(1) + ":"
        elif _LOG_LINE.match(line):
            start = _LOG_LABEL_END.split(line, maxsplit=1)[0].rstrip()
        else:
            continue
        if not any(real_line.startswith(start.lower()) for real_line in real_lines):
            missing.append(f"a line starting {start!r}")
    shown_cpus, real_cpus = _found_in(_CPU_NAME, shown), _found_in(_CPU_NAME, real)
    shown_precision, real_precision = _found_in(_PRECISION, shown), _found_in(_PRECISION, real)
    # Pasted from a CPU of this name: it must say what this CPU runs.
    if shown_cpus and shown_cpus == real_cpus and shown_precision != real_precision:
        missing.append(
            f"inference precision {sorted(shown_precision)} (this CPU runs {sorted(real_precision)})"
        )
    return missing


def test_readme_commands_are_found() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    texts = [command.text for command in commands]
    assert any(t.startswith("ovbench make-models models") for t in texts), texts
    assert any(t.startswith("ovbench run ") for t in texts), texts
    assert sum("localhost:8000/jobs" in t for t in texts) >= 3, texts
    assert not any("docker" in t for t in texts), "the container block is marked to skip"
    assert not any(t.startswith("make serve") for t in texts), "the test starts the server"


def test_parser_and_checks_on_a_sample() -> None:
    sample = (
        "```console\n$ echo a \\\n    b\n[ INFO ] Count: 5 iterations\n$ true\n```\n"
        f"{SKIP_MARKER}\n\n```console\n$ docker ps\n```\n```sh\n$ not-console\n```\n"
        f"{FAILS_MARKER}\n```console\n$ false\n[ ERROR ] No.\n```\n"
    )
    commands = readme_commands(sample)
    assert [(c.text, c.shown, c.fails) for c in commands] == [
        ("echo a \\\n    b", "[ INFO ] Count: 5 iterations\n", False),
        ("true", "", False),
        ("false", "[ ERROR ] No.\n", True),
    ]
    shown = '{"id":"x","status":"succeeded"}\nHTTP/1.1 202 Accepted\nlocation: /jobs/x\n'
    real = 'HTTP/1.1 202 Accepted\nlocation: /jobs/y\n\n{"id":"y","status":"succeeded","more":1}'
    assert missing_from(shown, real) == []
    assert missing_from(shown, '{"id":"x","status":"failed"}') == [
        '"status": "succeeded"',
        "HTTP status lines ['HTTP/1.1 202']",
        "a line starting 'location:'",
    ]
    shown_run = (
        "[ INFO ] Device: CPU (EPYC), OpenVINO 1\n"
        "[ INFO ] Compiled with: hint latency, inference precision f32\n"
    )
    same_cpu = shown_run.replace("f32", "bf16")
    other_cpu = same_cpu.replace("EPYC", "Xeon")
    assert missing_from(shown_run, shown_run) == []
    assert missing_from(shown_run, other_cpu) == []  # another host: its own precision
    assert missing_from(shown_run, same_cpu) == [
        "inference precision ['f32'] (this CPU runs ['bf16'])"
    ]


def test_readme_walkthrough_runs_as_written(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    server = make_server()
    workdir = tmp_path / "walkthrough"
    workdir.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", _script(commands, server.port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )
    outputs = _outputs(proc.stdout)
    for index, command in enumerate(commands):
        assert index in outputs, (
            f"README.md:{command.line} `{command.text}` did not finish; output:\n{proc.stdout[-4000:]}"
        )
        rc, real = outputs[index]
        if command.fails:
            assert rc != 0, f"README.md:{command.line} `{command.text}` did not fail:\n{real}"
            errors = [line for line in command.shown.splitlines() if line.startswith("[ ERROR ]")]
            assert errors, f"README.md:{command.line}: a failing command shows its [ ERROR ] line"
            for error in errors:
                assert error in real.splitlines(), (
                    f"README.md:{command.line} `{command.text}` shows an error it does not "
                    f"print:\n{error}\nreal output:\n{real}"
                )
            continue
        assert rc == 0, f"README.md:{command.line} `{command.text}` exited {rc}:\n{real}"
        missing = missing_from(command.shown, real)
        assert not missing, (
            f"README.md:{command.line} `{command.text}` shows what its output lacks: "
            f"{missing}\nreal output:\n{real}"
        )
    assert proc.returncode == 0, proc.stdout[-4000:]
