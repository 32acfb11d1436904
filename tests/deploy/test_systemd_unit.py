"""deploy/broadcaster.service: read as systemd reads it (a key may repeat; the values
add up), the keys docs/deploy.md relies on, and `systemd-analyze verify` where it exists
(it does on Debian; the unit's /opt/broadcaster is pointed at this checkout for it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.servers import REPO

UNIT = REPO / "deploy" / "broadcaster.service"


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections, each key with its values in order (systemd lets a key repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{line!r} before the first section"
        key, sep, value = line.partition("=")
        assert sep, f"{line!r} is not Key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return parse(UNIT.read_text(encoding="utf-8"))["Service"]


def one(key: str) -> str:
    values = service()[key]
    assert len(values) == 1, f"{key} given {len(values)} times"
    return values[0]


def test_restart_reload_and_run() -> None:
    assert one("Restart") == "on-failure"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("ExecStart") == "/opt/broadcaster/.venv/bin/broadcaster run"
    assert one("EnvironmentFile") == "/etc/broadcaster/secrets.env"
    environment = " ".join(service()["Environment"]).split()
    assert "BROADCASTER_CONFIG=/srv/broadcaster/broadcaster.yaml" in environment


def test_a_user_of_its_own() -> None:
    assert one("User") == "broadcaster"
    assert one("Group") == "broadcaster"
    assert one("CapabilityBoundingSet") == ""


def test_hardening() -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
    }
    assert {key: one(key) for key in expected} == expected
    assert service()["SystemCallFilter"][0] == "@system-service"


def test_writes_only_state_and_approvals() -> None:
    assert one("StateDirectory") == "broadcaster"
    assert one("ReadWritePaths").split() == ["/var/lib/broadcaster", "/srv/broadcaster/templates"]
    environment = " ".join(service()["Environment"]).split()
    assert "XDG_STATE_HOME=/var/lib/broadcaster" in environment


def test_installs_into_the_boot() -> None:
    sections = parse(UNIT.read_text(encoding="utf-8"))
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in sections["Unit"]["Wants"][0]


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not a systemd machine: the parsing above is the check
        return
    unit = tmp_path / "broadcaster.service"
    # verify checks that ExecStart exists: this checkout's .venv stands in for /opt's.
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/broadcaster", str(REPO)), encoding="utf-8"
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stderr.strip()) == (0, "")
