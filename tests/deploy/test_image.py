"""The Dockerfile, checked without Docker (none here): hadolint, and what the image holds.

The build is multi-stage (uv only in the builder), runs as a non-root user, has a health
check on /healthz, installs exactly uv.lock, and copies nothing that can hold a secret:
the build context is an allow-list in .dockerignore, and every file in it is scanned.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"

# A deployment's files: they carry ${VAR}s, accounts and endpoints, and belong on a volume.
DEPLOYMENT = {"broadcaster.yaml", "channels", "playbooks", "templates", "deploy", ".env"}
# The header followed by a line of base64: a key, not a mention of its format.
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}")
# In a settings file, a secret's key with a written value (not a ${VAR}).
LITERAL_SECRET = re.compile(
    r"(?im)^\s*[\w.-]*(password|passwd|secret|token|api_key|private_key)[\w.-]*\s*[:=]\s*"
    r"(?!\s*\$\{)(?!\s*$)\S"
)
SETTINGS = {".yaml", ".yml", ".env", ".toml", ".json", ".conf", ".ini", ".cfg"}


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (continuations joined)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result: list[Stage] = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(result))
            result.append(Stage(name))
        assert result, f"{keyword} before the first FROM"
        result[-1].instructions.append((keyword, args.strip()))
    return result


def copy_sources(args: str) -> tuple[list[str], bool]:
    """A COPY's sources and whether they come from another stage."""
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    return words[:-1], "--from=" in args


def context_files() -> list[Path]:
    """The files the build context holds: .dockerignore is `*` and then `!` exceptions."""
    lines = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore must start by leaving everything out"
    allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
    tracked = subprocess.run(
        ["git", "ls-files", *allowed], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in tracked]


def test_hadolint_finds_nothing() -> None:
    # No .hadolint.yaml: no rule is ignored, every finding fails.
    assert not (REPO / ".hadolint.yaml").exists()
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_builder_and_runtime_stages() -> None:
    found = stages(DOCKERFILE.read_text(encoding="utf-8"))
    assert len(found) >= 2
    builder, final = found[0], found[-1]
    assert any("uv sync --locked --no-dev" in run for run in builder.all("RUN"))
    # Every uv sync installs exactly the lock: none may resolve afresh.
    syncs = [run for s in found for run in s.all("RUN") if "uv sync" in run]
    assert len(syncs) >= 1
    assert all("--locked" in run for run in syncs), syncs
    # The runtime stage takes the venv from the builder and has no uv of its own.
    copied = [a for a in final.all("COPY") if f"--from={builder.name}" in a]
    assert any("/app/.venv" in a for a in copied), final.all("COPY")
    assert not any("uv" in shlex.split(run) for run in final.all("RUN"))


def test_final_stage_runs_as_a_user_that_is_not_root() -> None:
    final = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    users = final.all("USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_health_check_asks_healthz() -> None:
    final = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    assert "/healthz" in checks[0]
    assert "CMD" in checks[0]


def test_the_font_for_share_pics_is_installed() -> None:
    final = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    assert any("fonts-dejavu-core" in run for run in final.all("RUN"))


def test_nothing_copied_is_a_deployment_or_holds_a_secret() -> None:
    context = context_files()
    assert REPO / "uv.lock" in context
    assert REPO / "broadcaster" / "cli.py" in context
    for path in context:
        top = path.relative_to(REPO).parts[0]
        assert top not in DEPLOYMENT, f"{path} is in the build context"
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not PRIVATE_KEY.search(text), f"{path} holds a private key"
        if path.suffix in SETTINGS and path.name != "uv.lock":
            assert not LITERAL_SECRET.search(text), f"{path} holds a written secret"
    # And the Dockerfile copies from that context nothing of a deployment either.
    for stage in stages(DOCKERFILE.read_text(encoding="utf-8")):
        for args in stage.all("COPY") + stage.all("ADD"):
            sources, from_stage = copy_sources(args)
            if from_stage:
                continue
            for source in sources:
                assert Path(source).parts[0] not in DEPLOYMENT, args
                assert (REPO / source).exists(), f"COPY {source}: no such file"
                assert REPO / source in context or any(
                    p.is_relative_to(REPO / source) for p in context
                ), f"COPY {source}: left out of the build context by .dockerignore"


def test_secret_scan_would_notice_one() -> None:
    """The scan above is not vacuous: it finds a written token and lets a ${VAR} pass."""
    assert LITERAL_SECRET.search("access_token: abc123")
    assert LITERAL_SECRET.search("MQTT_PASSWORD=hunter2")
    assert not LITERAL_SECRET.search("access_token: ${MASTODON_TOKEN}")
    assert not LITERAL_SECRET.search("password:\n")
    key = (
        "-----BEGIN PRIVATE KEY-----\n" + "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg" + "\n"
    )
    assert PRIVATE_KEY.search(key)
    assert not PRIVATE_KEY.search("a PEM key (`-----BEGIN PRIVATE KEY-----`, ...)")
