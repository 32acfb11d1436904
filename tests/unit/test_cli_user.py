"""`broadcaster user ...`: console accounts as an administrator manages them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from broadcaster.accounts import password_matches
from broadcaster.cli import app
from broadcaster.models import Account, AuditEntry
from broadcaster.store import open_store

runner = CliRunner()
PASSWORD = "correct horse battery"
OFFICER = "Duty officer (log)"  # in the sample broadcaster.yaml


def run(config: Path, *args: str, stdin: str | None = None):
    return runner.invoke(app, [*args, "--config", str(config)], input=stdin, terminal_width=200)


def stored(config: Path) -> tuple[list[Account], list[AuditEntry]]:
    async def read() -> tuple[list[Account], list[AuditEntry]]:
        store = open_store("sqlite:///var/broadcaster.db", config.parent)
        await store.open()
        try:
            return await store.list_accounts(), await store.audit_trail(None)
        finally:
            await store.close()

    return asyncio.run(read())


def test_add_list_disable_enable_reset(deployment_copy: Path) -> None:
    config = deployment_copy
    added = run(
        config, "user", "add", "k.becker", "--role", "officer", "--officer", OFFICER,
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added k.becker (officer, duty officer Duty officer (log))" in added.output
    # Prompted twice, hidden.
    prompted = run(config, "user", "add", "viewer1", "--role", "viewer", stdin=f"{PASSWORD}\n" * 2)
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output

    listed = run(config, "user", "list")
    assert listed.exit_code == 0, listed.output
    assert "k.becker" in listed.output
    assert "viewer1" in listed.output
    assert "argon2" not in listed.output
    accounts, _ = stored(config)
    assert [(a.name, a.role, a.officer) for a in accounts] == [
        ("k.becker", "officer", OFFICER),
        ("viewer1", "viewer", None),
    ]
    assert password_matches(accounts[0].password_hash, PASSWORD)
    assert PASSWORD not in accounts[0].password_hash

    assert run(config, "user", "disable", "viewer1").exit_code == 0
    assert "disabled" in run(config, "user", "list").output
    accounts, _ = stored(config)
    assert (accounts[1].disabled, accounts[1].session_version) == (True, 1)
    assert run(config, "user", "enable", "viewer1").exit_code == 0
    accounts, _ = stored(config)
    assert (accounts[1].disabled, accounts[1].session_version) == (False, 1)

    new = "another long passphrase"
    reset = run(config, "user", "reset", "k.becker", "--password-stdin", stdin=new + "\n")
    assert reset.exit_code == 0, reset.output
    accounts, trail = stored(config)
    assert password_matches(accounts[0].password_hash, new)
    assert not password_matches(accounts[0].password_hash, PASSWORD)
    assert accounts[0].session_version == 1
    assert [(e.event, e.detail["account"]) for e in trail] == [
        ("account_added", "k.becker"),
        ("account_added", "viewer1"),
        ("account_disabled", "viewer1"),
        ("account_enabled", "viewer1"),
        ("account_reset", "k.becker"),
    ]
    assert all(e.actor.startswith("cli:") for e in trail)
    assert not any(PASSWORD in str(e.detail) or new in str(e.detail) for e in trail)


def test_errors_name_what_was_wrong(deployment_copy: Path) -> None:
    config = deployment_copy

    def add(*args: str, password: str = PASSWORD):
        return run(config, "user", "add", *args, "--password-stdin", stdin=password + "\n")

    assert add("kim", "--role", "editor").exit_code == 0
    cases = [
        (add("ann", "--role", "boss"), "unknown role 'boss': use one of viewer, editor"),
        (add("kim", "--role", "viewer"), "an account 'kim' exists already"),
        (add("ann", "--role", "viewer", password="short"), "at least 12 characters"),
        (add("ann", "--role", "viewer", "--officer", "Nobody"), "unknown duty officer 'Nobody'"),
        (add("a b", "--role", "viewer"), "account name 'a b'"),
        (run(config, "user", "disable", "ghost"), "no account 'ghost'"),
        (
            run(config, "user", "reset", "kim", "--password-stdin", stdin="tiny\n"),
            "at least 12 characters",
        ),
    ]
    for result, message in cases:
        assert result.exit_code != 0, result.output
        assert message in result.output, result.output
    accounts, trail = stored(config)
    assert [a.name for a in accounts] == ["kim"]
    assert accounts[0].role == "editor"
    assert [e.event for e in trail] == ["account_added"]


def test_mismatched_prompted_passwords_are_asked_again(deployment_copy: Path) -> None:
    mismatch = f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n"
    result = run(deployment_copy, "user", "add", "kim", "--role", "viewer", stdin=mismatch)
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output.lower()
    assert [a.name for a in stored(deployment_copy)[0]] == ["kim"]
