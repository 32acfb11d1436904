"""Real servers for tests: redis-server and mosquitto, started on free loopback ports.

Each runs as a child process with its files in the test's temporary folder and is
stopped when the fixture ends. Readiness is checked by connecting, not by sleeping.
mosquitto may also start from the shipped deploy/mosquitto/mosquitto.conf, and any server
can be killed (SIGKILL) and restarted on the same port with the same files.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MOSQUITTO_SAMPLE = REPO / "deploy" / "mosquitto" / "mosquitto.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Return once something accepts connections on the port; fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)  # polling a port while a server starts, not synchronising test logic
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} is not installed: apt-get install {name} (see .ci/run)")
    return found


def _launch(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    command: list[str]

    @property
    def url(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is saved that was not on disk already."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """The same command again: same port, same config, same files."""
        self.stop()
        self.process = _launch(self.command, self.port)


class RedisServer(Server):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class MosquittoServer(Server):
    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def start_redis(folder: Path, port: int | None = None, *, durable: bool = False) -> RedisServer:
    """A redis-server; `durable`: with its append-only file, fsynced on every write (what
    production should run), so it can be killed and restarted on the same port and folder."""
    port = port or free_port()
    log = folder / "redis.log"
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else []
    command = [
        _binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        *persistence,
        "--dir",
        str(folder),
        "--logfile",
        str(log),
    ]
    return RedisServer(_launch(command, port), port, log, command)


def start_mosquitto(
    folder: Path,
    port: int | None = None,
    *,
    sample: bool = False,
    omit: Collection[str] = (),
) -> MosquittoServer:
    """mosquitto keeping persistent sessions (QoS 1 queued for a client that is away).

    By default in memory only. With `sample`, the shipped deploy/mosquitto/mosquitto.conf
    with this port, `folder` for its database and log, and the options named in `omit`
    left out (to show what they are for)."""
    port = port or free_port()
    config = folder / f"mosquitto-{port}.conf"
    log = folder / f"mosquitto-{port}.log"
    if sample:
        text = _from_sample(port, folder, log, omit)
    else:
        text = (
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 10000\n"
            "set_tcp_nodelay true\n"
            f"log_dest file {log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
    config.write_text(text, encoding="utf-8")
    command = [_binary("mosquitto"), "-c", str(config)]
    return MosquittoServer(_launch(command, port), port, log, command)


def _from_sample(
    port: int,
    folder: Path,
    log: Path,
    omit: Collection[str],
    source: Path = MOSQUITTO_SAMPLE,
    paths: Mapping[str, Path] | None = None,
) -> str:
    replace = {
        "listener": f"listener {port} 127.0.0.1",
        "persistence_location": f"persistence_location {folder}",
        "log_dest": f"log_dest file {log}",
        **{option: f"{option} {path}" for option, path in (paths or {}).items()},
    }
    lines: list[str] = []
    seen: set[str] = set()
    for line in source.read_text(encoding="utf-8").splitlines():
        option = line.split(maxsplit=1)[0] if line.strip() and line[0] != "#" else ""
        seen.add(option)
        if option not in omit:
            lines.append(replace.get(option, line))
    if missing := (replace.keys() | set(omit)) - seen:
        raise RuntimeError(f"{source} has no {sorted(missing)} line to replace or omit")
    # Run as root (tests in a container), mosquitto would switch to its own user, which
    # cannot write the test's folder; as any other user this line has no effect.
    lines.append("user root")
    return "\n".join(lines) + "\n"


def mosquitto_password_file(path: Path, accounts: Mapping[str, str]) -> Path:
    """A password file made as at an installation: mosquitto_passwd, one account each."""
    for i, (user, password) in enumerate(accounts.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            [_binary("mosquitto_passwd"), *create, "-b", str(path), user, password],
            check=True,
            capture_output=True,
        )
    return path


def start_mosquitto_with(config: Path, folder: Path, paths: Mapping[str, Path]) -> MosquittoServer:
    """mosquitto from a shipped config file (deploy/mosquitto/compose.conf), on a free
    loopback port, with `folder` for its database and log and the file options in `paths`
    (password_file, acl_file) pointed at the test's own files."""
    port = free_port()
    log = folder / f"mosquitto-{port}.log"
    conf = folder / f"mosquitto-{port}.conf"
    conf.write_text(_from_sample(port, folder, log, (), config, paths), encoding="utf-8")
    command = [_binary("mosquitto"), "-c", str(conf)]
    return MosquittoServer(_launch(command, port), port, log, command)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()
