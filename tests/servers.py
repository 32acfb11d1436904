"""Real servers for tests: redis-server and mosquitto, started on free loopback ports.

Each runs as a child process with its files in the test's temporary folder and is
stopped when the fixture ends. Readiness is checked by connecting, not by sleeping.
mosquitto may also start from the shipped deploy/mosquitto/mosquitto.conf, and any server
can be killed (SIGKILL) and restarted on the same port with the same files. A Redis
Sentinel group (a primary, its replica, three sentinels) is ready when the sentinels say
so, and fails over when its primary is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

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


def start_redis(
    folder: Path,
    port: int | None = None,
    *,
    durable: bool = False,
    options: Sequence[str] = (),
) -> RedisServer:
    """A redis-server; `durable`: with its append-only file, fsynced on every write (what
    production should run), so it can be killed and restarted on the same port and folder.
    `options` are more command-line options (`--replicaof host port`)."""
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
        *options,
    ]
    return RedisServer(_launch(command, port), port, log, command)


SENTINEL_SERVICE = "mymaster"
DOWN_AFTER_MS = 1000  # a primary silent this long is down (subjectively, for one sentinel)
FAILOVER_TIMEOUT_MS = 5000


def ask(port: int, *command: str) -> Any:
    """One command to a Redis or a sentinel on a loopback port."""
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
        return client.execute_command(*command)


def until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll the real state until `check` holds (a server's own answer, not a delay)."""
    deadline = time.monotonic() + timeout
    while not _holds(check):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout}s")
        time.sleep(0.05)  # polling servers that change state by themselves


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (redis.exceptions.RedisError, OSError):
        return False


def replication(port: int) -> dict[str, Any]:
    """INFO replication of the Redis on `port`."""
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
        info: dict[str, Any] = client.info("replication")
        return info


@dataclass
class SentinelGroup:
    """A primary, a replica of it and three sentinels that monitor it with quorum 2."""

    primary: RedisServer
    replica: RedisServer
    sentinels: list[Server] = field(default_factory=list)
    service: str = SENTINEL_SERVICE

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def named_primary(self, sentinel: Server) -> int | None:
        """The port of the primary this sentinel names."""
        answer = ask(sentinel.port, "SENTINEL", "get-master-addr-by-name", self.service)
        return int(answer[1]) if answer else None

    def until_named(self, server: RedisServer, timeout: float = 30.0) -> None:
        """Every sentinel names `server` the primary, and it says it is one."""
        until(
            f"sentinels naming 127.0.0.1:{server.port} the primary",
            lambda: (
                all(self.named_primary(s) == server.port for s in self.sentinels)
                and replication(server.port)["role"] == "master"
            ),
            timeout,
        )

    def until_ready(self, timeout: float = 30.0) -> None:
        """The replica is online at the primary, and every sentinel names the primary,
        knows the replica and the two other sentinels (without those, no failover)."""
        until(
            "the replica online",
            lambda: replication(self.primary.port).get("slave0", {}).get("state") == "online",
            timeout,
        )
        self.until_named(self.primary, timeout)

        def all_known() -> bool:
            for sentinel in self.sentinels:
                master = _pairs(ask(sentinel.port, "SENTINEL", "master", self.service))
                if int(master["num-other-sentinels"]) != len(self.sentinels) - 1:
                    return False
                replicas = [
                    _pairs(r) for r in ask(sentinel.port, "SENTINEL", "replicas", self.service)
                ]
                if not any(
                    int(r["port"]) == self.replica.port and r["master-link-status"] == "ok"
                    for r in replicas
                ):
                    return False
            return True

        until("the sentinels knowing each other and the replica", all_known, timeout)

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()


def _pairs(flat: Any) -> dict[str, Any]:
    """A sentinel's flat [key, value, key, value, ...] answer as a dict."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


def start_sentinel_group(folder: Path, *, sentinels: int = 3) -> SentinelGroup:
    """A durable primary, its replica (`replicaof`) and `sentinels` sentinels, each in a
    folder of its own, on free loopback ports; ready (SentinelGroup.until_ready)."""
    started: list[Server] = []
    try:
        (folder / "primary").mkdir(parents=True)
        primary = start_redis(folder / "primary", durable=True, options=_FAST_SYNC)
        started.append(primary)
        (folder / "replica").mkdir()
        replica = start_redis(
            folder / "replica",
            durable=True,
            options=[*_FAST_SYNC, "--replicaof", "127.0.0.1", str(primary.port)],
        )
        started.append(replica)
        group = SentinelGroup(primary, replica)
        for n in range(sentinels):
            group.sentinels.append(_start_sentinel(folder / f"sentinel-{n}", primary.port))
            started.append(group.sentinels[-1])
        group.until_ready()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return group


# The replica's first full copy at once: Redis 7 waits 5 s for more replicas by default.
_FAST_SYNC = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]


def _start_sentinel(folder: Path, primary_port: int) -> Server:
    folder.mkdir()
    port = free_port()
    log = folder / "sentinel.log"
    config = folder / "sentinel.conf"  # the sentinel rewrites it with what it learns
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {folder}\n"
        f"logfile {log}\n"
        f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SENTINEL_SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n",
        encoding="utf-8",
    )
    command = [_binary("redis-server"), str(config), "--sentinel"]
    return Server(_launch(command, port), port, log, command)


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


def start_mosquitto_tls(folder: Path, ca: Path, cert: Path, key: Path) -> MosquittoServer:
    """mosquitto with a TLS listener only (the test's own CA and server certificate)."""
    port = free_port()
    log = folder / f"mosquitto-tls-{port}.log"
    config = folder / f"mosquitto-tls-{port}.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        "allow_anonymous true\npersistence false\n"
        f"log_dest file {log}\nlog_type error\nlog_type warning\nlog_type notice\n"
        + ("user root\n" if os.geteuid() == 0 else ""),
        encoding="utf-8",
    )
    command = [_binary("mosquitto"), "-c", str(config)]
    return MosquittoServer(_launch(command, port), port, log, command)
