"""PostgreSQL 15 and RabbitMQ from Debian's packages, started and stopped by the tests.

Each server runs on 127.0.0.1 with ephemeral ports, in a temporary directory of its own, as
../shared/FLEET-SERVERS.md measured: PostgreSQL's `initdb` and `pg_ctl` as the `postgres` user
(when the tests run as root) on a directory that user owns; RabbitMQ with its own node name,
ports, EPMD (started here, so it is ours to stop), mnesia, log and config files, and
`inet_dist_use_interface` so that nothing listens beyond loopback. Readiness is polled with
deadlines (`pg_ctl -w`, `rabbitmqctl await_startup`), never slept for.

`postgres_server()` and `rabbitmq_server()` are context managers that stop the server and
remove its directory on the way out, also when the body raised. `.ci/servers-prepare.sh`
installs the packages (`make test` runs it as root when they are missing).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD = Path("/usr/bin/epmd")
INSTALL_HINT = (
    "install them with `sudo bash .ci/servers-prepare.sh` "
    "(apt-get install postgresql rabbitmq-server; no service needs to run)"
)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Above the longest benchmark (`duration_s` <= 86400): RabbitMQ's default, 30 minutes, closes
# the channel of a consumer that holds an unacknowledged message longer than that.
CONSUMER_TIMEOUT_MS = 25 * 3600 * 1000


class ServerError(RuntimeError):
    """A test server did not start or stop as it should (its log's tail is in the message)."""


def missing_packages() -> list[str]:
    """Debian packages whose binaries the test servers need and this machine lacks."""
    missing = []
    if not (PG_BIN / "pg_ctl").is_file():
        missing.append("postgresql")
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or not EPMD.exists():
        missing.append("rabbitmq-server")
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _make_private_dir(prefix: str, owner: str) -> Path:
    """A new directory under the system temp dir, owned by `owner` when we are root.

    Not under pytest's tmp_path: that one is private to root (0700), so a service user could
    not enter it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        user = pwd.getpwnam(owner)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def listening_addresses(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
    found: set[tuple[str, int]] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:  # 0A: LISTEN
                    continue
                hex_address, hex_port = local.split(":")
                raw = bytes.fromhex(hex_address)
                # /proc shows the address as 32-bit words in host (little-endian) order.
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def process_tree(root_pids: list[int]) -> list[int]:
    """`root_pids` and all their descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(root_pids)
    while todo:
        pid = todo.pop()
        if pid_alive(pid):
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


# ---------------------------------------------------------------------------- PostgreSQL
class PostgresServer:
    """One PostgreSQL cluster in `base_dir` (owned by the `postgres` user when we are root)."""

    user = "postgres"

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "postgres.log"
        self.port = free_port()
        self.host = "127.0.0.1"

    def _run(self, *command: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        proc = subprocess.run(
            [*prefix, *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise ServerError(
                f"{' '.join(command)} exited {proc.returncode}: {proc.stdout}{proc.stderr}\n"
                f"--- {self.log_path} (tail)\n{_tail(self.log_path)}"
            )

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        """Start and wait until it accepts connections (`pg_ctl -w`, with a deadline)."""
        options = f"-p {self.port} -k {self.base_dir} -c listen_addresses={self.host}"
        self._run(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data_dir), "-o", options, "-l", str(self.log_path)),
            *("-w", "-t", str(int(START_TIMEOUT_S)), "start"),
            timeout_s=START_TIMEOUT_S + 5,
        )

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, from `postmaster.pid` (None when it is not running)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast` (or `immediate`: a crash, recovered at the next start)."""
        if self.postmaster_pid() is None:
            return
        self._run(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(STOP_TIMEOUT_S)), "stop"),
            timeout_s=STOP_TIMEOUT_S + 5,
        )

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started (a crash; last resort)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        tree = process_tree([pid])
        for each in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        _wait_gone(tree, STOP_TIMEOUT_S)

    def pids(self) -> list[int]:
        pid = self.postmaster_pid()
        return process_tree([pid]) if pid is not None else []

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` (psycopg 3, no password: trust on loopback)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A psycopg connection in autocommit mode (the caller closes it)."""
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def create_database(self) -> str:
        """A new, empty database; returns its name."""
        name = f"ovbench_test_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing whatever connections are still open on it."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 cluster on 127.0.0.1:<ephemeral>, stopped and deleted on exit."""
    server = PostgresServer(_make_private_dir("ovbench-postgres-", PostgresServer.user))
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        except (ServerError, subprocess.TimeoutExpired):
            server.kill()
        finally:
            shutil.rmtree(server.base_dir, ignore_errors=True)


# ------------------------------------------------------------------------------ RabbitMQ
class RabbitMQServer:
    """One RabbitMQ node in `base_dir`, with its own EPMD; runs as the current user."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"ovbench{self.port}@localhost"
        self.log_path = base_dir / "server.log"
        self.config_path = base_dir / "rabbitmq.conf"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self._process: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        for sub in ("mnesia", "log"):
            (base_dir / sub).mkdir(exist_ok=True)
        self.config_path.write_text(
            f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\nlog.console = true\n"
        )
        (base_dir / "enabled_plugins").write_text("[].\n")

    @property
    def env(self) -> dict[str, str]:
        """The environment the server and `rabbitmqctl` share (HOME holds the Erlang cookie)."""
        base = self.base_dir
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.config_path),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        """`rabbitmqctl ARGS` against this node (not checked)."""
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def _start_epmd(self) -> None:
        """Our own EPMD, in the foreground (a child of ours, not a daemon nobody stops)."""
        if self._epmd is not None and self._epmd.poll() is None:
            return
        self._epmd = subprocess.Popen(
            [str(EPMD), "-address", "127.0.0.1", "-port", str(self.epmd_port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # answers once it listens; the node would start a daemon of its own before
            probe = subprocess.run(
                [str(EPMD), "-port", str(self.epmd_port), "-names"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise ServerError(f"epmd on 127.0.0.1:{self.epmd_port} did not start")
            time.sleep(0.02)

    def start(self) -> None:
        """Start the node and wait until it has booted (`rabbitmqctl await_startup`)."""
        self._start_epmd()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop and kill reach the VM too
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            waited = self.ctl(
                "await_startup", "--timeout", str(max(1, int(left))), timeout_s=left + 5
            )
            if waited.returncode == 0:
                return
            if self._process.poll() is not None:
                raise ServerError(
                    f"rabbitmq-server exited {self._process.returncode} during start-up\n"
                    f"--- {self.log_path} (tail)\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"RabbitMQ did not start within {START_TIMEOUT_S:g} s: {waited.stderr}\n"
                    f"--- {self.log_path} (tail)\n{_tail(self.log_path)}"
                )
            time.sleep(0.1)  # the node is not registered yet: ask again

    def epmd_pid(self) -> int | None:
        epmd = self._epmd
        return epmd.pid if epmd is not None and epmd.poll() is None else None

    def pids(self) -> list[int]:
        """The node's processes (the start script, the Erlang VM and its helpers) and EPMD."""
        roots = [p.pid for p in (self._process, self._epmd) if p is not None and p.poll() is None]
        return process_tree(roots)

    def _signal_node(self, sig: int) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        tree = process_tree([process.pid])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
        if not _wait_gone(tree, STOP_TIMEOUT_S):
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait_gone(tree, STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM: the node shuts down cleanly (about 1 s). EPMD stays for a restart."""
        self._signal_node(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9 of the node's whole process group: a crash."""
        self._signal_node(signal.SIGKILL)

    def close(self) -> None:
        """Stop the node and our EPMD."""
        try:
            self.stop()
        finally:
            epmd = self._epmd
            if epmd is not None and epmd.poll() is None:
                epmd.kill()
                epmd.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """A RabbitMQ node on 127.0.0.1:<ephemeral>, stopped and deleted on exit."""
    server = RabbitMQServer(Path(tempfile.mkdtemp(prefix="ovbench-rabbitmq-")))
    try:
        server.start()
        yield server
    finally:
        try:
            server.close()
        finally:
            shutil.rmtree(server.base_dir, ignore_errors=True)
