"""deploy/compose.yaml read as compose reads it (PyYAML, merge keys included): the
services and their volumes, health checks and order, every ${VAR} declared in
.env.example, no secret written down, the files it mounts, and the broadcaster.yaml it
expects. `docker compose config` checks it too where compose exists (not here: the
docker client has no compose plugin and no daemon)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from broadcaster.config import read_settings
from tests.servers import MOSQUITTO_SAMPLE, REPO

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DAEMONS = ("broadcaster-a", "broadcaster-b")
SERVICES = {"mosquitto", "redis", *DAEMONS, "caddy"}
# ${NAME}, not $${NAME} (compose's escape: the container's shell reads it at run time).
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_NAME = re.compile(r"(?i)password|passwd|secret|token|auth|_key$|^key$")
NOT_SECRET = {"DEPLOYMENT_DIR", "PUBLIC_HOST", "ACME_EMAIL", "MQTT_PUBLISH"}


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            pairs[name.strip()] = value.strip()
    return pairs


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [str(k), *strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [str(node)] if node is not None else []


def test_the_services() -> None:
    assert set(compose()["services"]) == SERVICES


def test_every_service_has_a_health_check_and_restarts() -> None:
    services = compose()["services"]
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    for name, service in services.items():
        check = service.get("healthcheck")
        assert isinstance(check, dict), f"{name}: no healthcheck"
        assert check.get("disable") is not True, name
        if name in DAEMONS:
            # Theirs is the image's (HEALTHCHECK on /healthz); compose only retimes it.
            assert service["build"]["dockerfile"] == "Dockerfile"
            assert "HEALTHCHECK" in dockerfile
            assert "test" not in check
        else:
            assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert service["restart"] == "unless-stopped", name


def test_order_of_start() -> None:
    services = compose()["services"]
    for name in DAEMONS:
        assert services[name]["depends_on"] == {
            "mosquitto": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert set(services["caddy"]["depends_on"]) == set(DAEMONS)


def test_volumes() -> None:
    data = compose()
    services = data["services"]
    named = set(data["volumes"])
    assert named == {
        "mosquitto-data",
        "redis-data",
        "broadcaster-state",
        "caddy-data",
        "caddy-config",
    }
    mounts = {
        name: [v.split(":")[:2] for v in s.get("volumes", [])] for name, s in services.items()
    }
    assert ["mosquitto-data", "/mosquitto/data"] in mounts["mosquitto"]
    assert ["redis-data", "/data"] in mounts["redis"]
    assert ["caddy-data", "/data"] in mounts["caddy"]
    # Both daemons: the same deployment and the same state volume.
    assert mounts["broadcaster-a"] == mounts["broadcaster-b"]
    assert ["${DEPLOYMENT_DIR}", "/srv/broadcaster"] in mounts["broadcaster-a"]
    assert ["broadcaster-state", "/var/lib/broadcaster"] in mounts["broadcaster-a"]
    # Every named volume is used, and every file mounted from deploy/ exists (but the
    # password file, which is made at install and never committed).
    used = {src for ms in mounts.values() for src, _ in ms}
    assert named <= used
    for source in used - named:
        if source.startswith("./") and source != "./mosquitto/passwd":
            assert (DEPLOY / source).is_file(), source
    assert "mosquitto/passwd" in (DEPLOY / ".gitignore").read_text(encoding="utf-8")


def test_redis_writes_every_change_to_disk() -> None:
    command = " ".join(compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync always" in command
    assert "--requirepass" in command


def test_the_daemons_differ_only_in_their_client_id() -> None:
    services = compose()["services"]
    a, b = (dict(services[n]) for n in DAEMONS)
    env_a, env_b = a.pop("environment"), b.pop("environment")
    assert a == b
    assert env_a.pop("MQTT_CLIENT_ID") == "broadcaster-a"
    assert env_b.pop("MQTT_CLIENT_ID") == "broadcaster-b"
    assert env_a == env_b


def test_every_variable_is_in_env_example_and_no_secret_has_a_value() -> None:
    # What compose interpolates: the values, not the comments.
    used = set(VARIABLE.findall(" ".join(strings(compose()))))
    declared = env_example()
    assert used, "compose.yaml reads nothing from .env?"
    assert used <= set(declared), f"not in .env.example: {sorted(used - set(declared))}"
    for name, value in declared.items():
        if name not in NOT_SECRET:
            assert value == "", f".env.example gives {name} a value"
    # The secrets compose hands on are exactly those .env.example leaves empty.
    assert {n for n in used if SECRET_NAME.search(n)} <= {n for n, v in declared.items() if not v}


def test_no_secret_is_written_in_compose() -> None:
    services = compose()["services"]
    for name, service in services.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: write environment as a mapping"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert VARIABLE.fullmatch(str(value)), f"{name}: {key} is written, not ${{VAR}}"
    # Nor anywhere else: a secret's flag is followed by a variable, never a value.
    text = " ".join(strings(compose()))
    for flag in ("--requirepass", "-P"):
        for after in re.findall(re.escape(flag) + r"\s+(\S+)", text):
            assert after.strip("\"'").startswith("$"), f"{flag} {after}"


def test_caddy_reads_only_what_compose_gives_it() -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    used = set(re.findall(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}", caddyfile))
    assert used == set(compose()["services"]["caddy"]["environment"])
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile)
    assert upstreams is not None
    assert upstreams.group(1).split() == [f"{d}:8080" for d in DAEMONS]
    assert "health_uri /healthz" in caddyfile
    # The pages people reach are routed; the API, metrics and health are not.
    public = re.search(r"@public path (.+)", caddyfile)
    assert public is not None
    paths = public.group(1).split()
    assert {"/console", "/confirm/*", "/warnings", "/warnings/*"} <= set(paths)
    assert not any(p.startswith(("/api", "/metrics", "/healthz")) for p in paths)


def test_mosquitto_keeps_the_durability_settings_of_the_sample() -> None:
    """compose.conf differs from mosquitto.conf only in listener, accounts and paths."""

    def options(path: Path) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition(" ")
                found.setdefault(key, []).append(value.strip())
        return found

    sample, ours = options(MOSQUITTO_SAMPLE), options(DEPLOY / "mosquitto" / "compose.conf")
    local = {"listener", "allow_anonymous", "persistence_location", "log_dest"}
    assert {k: v for k, v in sample.items() if k not in local} == {
        k: v for k, v in ours.items() if k not in local | {"password_file", "acl_file"}
    }
    assert ours["allow_anonymous"] == ["false"]
    assert ours["autosave_on_changes"] == ["true"]
    mounted = [v.split(":")[1] for v in compose()["services"]["mosquitto"]["volumes"]]
    assert ours["password_file"][0] in mounted
    assert ours["acl_file"][0] in mounted
    assert ours["persistence_location"][0].rstrip("/") in mounted


def test_the_deployment_settings_load_with_what_compose_sets(monkeypatch) -> None:
    """deploy/broadcaster.yaml, with .env filled in and one daemon's environment: no unset
    variable, and the shared store, the broker and the public URL as compose means them."""
    service = compose()["services"]["broadcaster-a"]
    for name in env_example():
        monkeypatch.setenv(name, secrets.token_hex(16))
    monkeypatch.setenv("PUBLIC_HOST", "alerts.example.org")
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, VARIABLE.sub(lambda m: os.environ[m[1]], value))
    settings, problems = read_settings(DEPLOY / "broadcaster.yaml")
    assert problems == []
    assert settings is not None
    assert settings.store.url.startswith("redis://:")
    assert settings.store.url.endswith("@redis:6379/0")
    assert settings.mqtt.url == "mqtt://mosquitto:1883"
    assert settings.mqtt.client_id == "broadcaster-a"
    assert settings.mqtt.username == "broadcaster"
    assert settings.http.listen == "0.0.0.0:8080"
    assert settings.http.public_url == "https://alerts.example.org"
    assert settings.http.api_token is not None
    assert settings.security.trigger_secret is not None
    assert settings.console.session_secret is not None


def test_docker_compose_config_accepts_it_where_compose_exists(tmp_path: Path) -> None:
    """Compose's own check, with .env.example's variables filled in. The rest of this
    file checks the same without it."""
    docker = shutil.which("docker")
    has_compose = (
        docker is not None
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_compose:
        return
    env = tmp_path / ".env"
    env.write_text("".join(f"{n}={v or secrets.token_hex(16)}\n" for n, v in env_example().items()))
    result = subprocess.run(
        [str(docker), "compose", "-f", str(COMPOSE), "--env-file", str(env), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
