"""docs/signing.md cannot drift: its worked example is signed as broadcaster.intake signs,
the daemon's intake accepts it, and its Python and shell recipes give that signature."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from broadcaster.intake import canonical_bytes, parse_retraction, parse_trigger, sign
from broadcaster.web import openapi
from tests.servers import REPO

DOC = REPO / "docs" / "signing.md"
BLOCK = re.compile(r"<!-- example: ([a-z-]+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)
EXAMPLES = dict(BLOCK.findall(DOC.read_text(encoding="utf-8")))
SECRET = re.search(r'^SECRET = "([^"]+)"', EXAMPLES["python"], re.MULTILINE)


def secret() -> str:
    assert SECRET, "the Python example defines SECRET"
    return SECRET[1]


def test_the_doc_has_every_example():
    assert set(EXAMPLES) == {
        "unsigned-trigger",
        "canonical-trigger",
        "signed-trigger",
        "python",
        "shell-jq",
        "shell-python",
        "unsigned-retraction",
        "signed-retraction",
    }
    for shell in ("shell-jq", "shell-python"):
        assert f"SECRET='{secret()}'" in EXAMPLES[shell]


def test_the_worked_trigger_is_signed_as_the_daemon_signs():
    unsigned = json.loads(EXAMPLES["unsigned-trigger"])
    signed = json.loads(EXAMPLES["signed-trigger"])
    assert canonical_bytes(unsigned).decode("utf-8") == EXAMPLES["canonical-trigger"].strip()
    assert signed == {**unsigned, "signature": sign(unsigned, secret())}
    issued = datetime.fromisoformat(signed["issued_at"])
    trigger = parse_trigger(
        json.dumps(signed, ensure_ascii=False).encode(),
        secret=secret(),
        max_age=timedelta(minutes=15),
        now=issued,
    )
    assert trigger.id == "FW-DUS-2026-000123"
    assert trigger.params == unsigned["params"]
    # The OpenAPI document's example trigger is the same one.
    assert openapi.document()["components"]["schemas"]["Trigger"]["examples"] == [signed]


def test_the_worked_retraction_is_signed_as_the_daemon_signs():
    unsigned = json.loads(EXAMPLES["unsigned-retraction"])
    signed = json.loads(EXAMPLES["signed-retraction"])
    assert signed == {**unsigned, "signature": sign(unsigned, secret())}
    request = parse_retraction(
        json.dumps(signed).encode(),
        secret=secret(),
        max_age=timedelta(minutes=15),
        now=datetime.fromisoformat(signed["issued_at"]),
    )
    assert request.alert_id == "FW-DUS-2026-000123"


def _trigger_file(folder: Path) -> Path:
    path = folder / "trigger.json"
    path.write_text(EXAMPLES["unsigned-trigger"], encoding="utf-8")
    return path


def test_the_python_recipe_prints_the_signed_trigger(tmp_path):
    _trigger_file(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", EXAMPLES["python"]],
        cwd=tmp_path,
        capture_output=True,
        check=True,
        encoding="utf-8",
    )
    assert json.loads(result.stdout) == json.loads(EXAMPLES["signed-trigger"])


@pytest.mark.parametrize("recipe", ["shell-jq", "shell-python"])
def test_the_shell_recipes_write_the_signed_trigger(tmp_path, recipe):
    # scripts/bootstrap.sh --test installs both; a machine without them fails here.
    for tool in ("jq", "openssl", "python3"):
        assert shutil.which(tool), f"{tool} is needed for the shell recipes of docs/signing.md"
    _trigger_file(tmp_path)
    subprocess.run(["bash", "-euc", EXAMPLES[recipe]], cwd=tmp_path, check=True)
    signed = json.loads((tmp_path / "signed.json").read_text(encoding="utf-8"))
    assert signed == json.loads(EXAMPLES["signed-trigger"])


def test_a_changed_param_breaks_the_worked_signature():
    """The check above could not pass with any signature: a change is caught."""
    signed = json.loads(EXAMPLES["signed-trigger"])
    signed["params"]["location"] = "Ackerstraße 14"
    assert sign(signed, secret()) != signed["signature"]
