"""Loading what can be used, and loading it again while the daemon runs.

One broken file never stops every warning: a playbook or channel whose files are broken
(a YAML typo, an unknown key, a missing or broken template) is set aside with its error,
at start-up too; the others keep working, its triggers are refused with `unknown_scenario`
and a detail saying why, and the duty officers are told once. Only broadcaster.yaml itself
must be right: without it there is nothing to run.

The daemon picks up changes to playbooks, templates (approvals.yaml included) and channels
without a restart, on SIGHUP, on `POST /api/reload` and when the files change (they are
looked at every half second). Every reload is validated first, exactly as
`broadcaster validate` does, in a worker thread; then the running parts take it at once.
Changes to broadcaster.yaml itself need a restart, and the reload says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from broadcaster.channels.registry import ChannelPool
from broadcaster.deployment import Deployment, read_deployment
from broadcaster.models import AuditEntry
from broadcaster.officers import OfficerNotices
from broadcaster.problems import ConfigError, Problem
from broadcaster.store.base import Store
from broadcaster.validation import Validator

log = structlog.get_logger(__name__)

WATCH_EVERY = 0.5  # seconds between looks at the files


@dataclass(frozen=True)
class Loaded:
    deployment: Deployment  # what can be used: the set-aside parts are left out
    problems: list[Problem] = field(default_factory=list)


def load_usable(config: Path | None = None) -> Loaded:
    """Everything that can be used, validated; ConfigError when broadcaster.yaml itself is
    broken (or missing), as nothing can run without it."""
    deployment, problems = read_deployment(config)
    if deployment is None:
        raise ConfigError([p for p in problems if p.severity == "error"] or problems)
    shown = deployment.show(deployment.config_file)
    fatal = [p for p in problems if p.severity == "error" and p.file == shown and not p.subject]
    if fatal:
        raise ConfigError(fatal)
    problems = problems + Validator(deployment).run()
    why: dict[str, list[str]] = {}
    for p in problems:
        if p.severity == "error" and p.subject:
            why.setdefault(p.subject, []).append(_reason(p))
    set_aside = {subject: "; ".join(reasons) for subject, reasons in why.items()}
    usable = replace(
        deployment,
        playbooks={k: v for k, v in deployment.playbooks.items() if f"playbook:{k}" not in why},
        channels={k: v for k, v in deployment.channels.items() if f"channel:{k}" not in why},
        set_aside=set_aside,
    )
    if "approvals" in why:
        usable.approvals.entries.clear()  # nothing is approved: live alerts are refused
    return Loaded(usable, problems)


def _reason(problem: Problem) -> str:
    place = f"{problem.file}: {problem.where}" if problem.where else problem.file
    return f"{place}: {problem.what}"


def file_state(roots: Iterable[Path]) -> frozenset[tuple[str, int, int]]:
    """What changes when a file under these folders (or the file itself) is written."""
    seen: set[tuple[str, int, int]] = set()
    for root in roots:
        paths = [root] if root.is_file() else root.rglob("*") if root.is_dir() else []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue  # removed while we looked
            if path.is_file():
                seen.add((str(path), stat.st_mtime_ns, stat.st_size))
    return frozenset(seen)


class Reloader:
    def __init__(
        self,
        deployment: Deployment,
        pool: ChannelPool,
        officers: OfficerNotices,
        store: Store,
    ) -> None:
        self.deployment = deployment
        self.pool = pool
        self.officers = officers
        self.store = store
        self.lock = asyncio.Lock()

    def roots(self) -> list[Path]:
        d, paths = self.deployment, self.deployment.settings.paths
        return [
            d.config_file,
            *(d.base_dir / p for p in (paths.playbooks, paths.templates, paths.channels)),
        ]

    async def reload(self, cause: str) -> dict[str, Any]:
        """Validate the files, then use them; the report of `POST /api/reload`."""
        async with self.lock:
            try:
                loaded = await asyncio.to_thread(load_usable, self.deployment.config_file)
            except ConfigError as exc:
                log.error("reload_refused", cause=cause, problems=[str(p) for p in exc.problems])
                return {
                    "loaded": self.loaded(),
                    "set_aside": self.set_aside(),
                    "changed": False,
                    "error": f"{self.deployment.show(self.deployment.config_file)} is broken, "
                    f"nothing was changed: {'; '.join(str(p) for p in exc.problems)}",
                }
            new = loaded.deployment
            before = (
                dict(self.deployment.playbooks),
                dict(self.deployment.channels),
                dict(self.deployment.set_aside),
                dict(self.deployment.approvals.entries),
            )
            restart = new.settings != self.deployment.settings
            self.deployment.take(new)
            await self.pool.sync(self.deployment.channels)
            changed = before != (
                self.deployment.playbooks,
                self.deployment.channels,
                self.deployment.set_aside,
                self.deployment.approvals.entries,
            )
            report = {
                "loaded": self.loaded(),
                "set_aside": self.set_aside(),
                "changed": changed,
            }
            if restart:
                report["restart_needed"] = (
                    "broadcaster.yaml changed: its settings apply after a restart"
                )
            await self.tell_set_aside()
            if changed:
                log.warning("reloaded", cause=cause, **report)
                await self.store.audit(AuditEntry(event="reloaded", actor=cause, detail=report))
            return report

    def loaded(self) -> dict[str, list[str]]:
        return {
            "playbooks": sorted(self.deployment.playbooks),
            "channels": sorted(self.deployment.channels),
        }

    def set_aside(self) -> list[dict[str, str]]:
        d = self.deployment
        out = []
        for subject, error in sorted(d.set_aside.items()):
            kind, _, name = subject.partition(":")
            file = {
                "playbook": d.base_dir / d.settings.paths.playbooks / f"{name}.yaml",
                "channel": d.base_dir / d.settings.paths.channels / f"{name}.yaml",
            }.get(kind, d.approvals.path)
            out.append({"kind": kind, "id": name or kind, "file": d.show(file), "error": error})
        return out

    async def tell_set_aside(self) -> None:
        """The duty officers hear once of each broken playbook, channel or approvals file."""
        for item in self.set_aside():
            await self.officers.set_aside(item["kind"], item["id"], item["error"])

    async def watch(self) -> None:
        """Reload when a file changes: looked at every half second, reloaded once the
        change has settled (an editor writes a file in more than one step)."""
        last = await asyncio.to_thread(file_state, self.roots())
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = await asyncio.to_thread(file_state, self.roots())
            if now == last:
                continue
            await asyncio.sleep(WATCH_EVERY)
            settled = await asyncio.to_thread(file_state, self.roots())
            if settled != now:
                continue  # still being written: look again
            last = settled
            await self.reload("files changed")
