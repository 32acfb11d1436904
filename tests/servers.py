"""Real servers for tests: redis-server and mosquitto, started on free loopback ports.

Each runs as a child process with its files in the test's temporary folder and is
stopped when the fixture ends. Readiness is checked by connecting, not by sleeping.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

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
    process = subprocess.Popen(
        [
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    return RedisServer(process, port, log)


def start_mosquitto(folder: Path, port: int | None = None) -> MosquittoServer:
    """mosquitto keeping persistent sessions (QoS 1 queued for a client that is away)."""
    port = port or free_port()
    config = folder / f"mosquitto-{port}.conf"
    log = folder / f"mosquitto-{port}.log"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 10000\n"
        f"log_dest file {log}\n"
        "log_type error\nlog_type warning\nlog_type notice\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [_binary("mosquitto"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    return MosquittoServer(process, port, log)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()
