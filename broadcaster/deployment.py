"""A deployment as the communications office edits it: settings, playbooks, channels,
templates and approvals (contract section 1), loaded together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from broadcaster.channels.settings import ChannelConfig, load_channels
from broadcaster.config import Settings, config_path, read_settings
from broadcaster.messages import Renderer
from broadcaster.playbooks import Playbook, load_playbooks
from broadcaster.problems import ConfigError, Problem, display_path
from broadcaster.templating import APPROVALS_FILE, Approvals, TemplateFolder

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    config_file: Path
    playbooks: dict[str, Playbook]
    channels: dict[str, ChannelConfig]
    templates: TemplateFolder
    approvals: Approvals
    # What is set aside because its files are broken: "playbook:<id>", "channel:<id>" or
    # "approvals", with why. The others keep working.
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.config_file.parent

    def show(self, path: Path) -> str:
        return display_path(path, self.base_dir)

    def primary_language(self) -> str:
        """The language notices go out in: the first playbook's primary language."""
        first = next(iter(self.playbooks.values()), None)
        return first.primary_language if first is not None else "en"

    def aside(self, kind: str) -> dict[str, str]:
        """The set-aside playbooks (or channels) by id, with why."""
        prefix = f"{kind}:"
        return {
            k.removeprefix(prefix): v for k, v in self.set_aside.items() if k.startswith(prefix)
        }

    def take(self, new: Deployment) -> None:
        """Become `new` (a reload), in place: every part holds these very mappings."""
        _replace(self.playbooks, new.playbooks)
        _replace(self.channels, new.channels)
        _replace(self.set_aside, new.set_aside)
        _replace(self.approvals.entries, new.approvals.entries)

    def renderer(self) -> Renderer:
        s = self.settings
        return Renderer(self.templates, self.approvals, s.drill.prefix, s.http.public_url)


def _replace(mine: dict[K, V], theirs: dict[K, V]) -> None:
    mine.clear()
    mine.update(theirs)


def read_deployment(path: Path | None = None) -> tuple[Deployment | None, list[Problem]]:
    """Everything that can be read, and every problem met on the way."""
    file = config_path(path)
    settings, problems = read_settings(file)
    if settings is None:
        return None, problems
    base = file.resolve().parent
    playbooks, found = load_playbooks(base / settings.paths.playbooks, base)
    problems += found
    channels, found = load_channels(base / settings.paths.channels, base)
    problems += found
    templates = TemplateFolder(base / settings.paths.templates)
    approvals, found = Approvals.load(templates.root / APPROVALS_FILE)
    problems += found
    deployment = Deployment(settings, file.resolve(), playbooks, channels, templates, approvals)
    return deployment, problems


def load_deployment(path: Path | None = None) -> Deployment:
    """The deployment for the daemon and the commands; ConfigError names every problem."""
    deployment, problems = read_deployment(path)
    errors = [p for p in problems if p.severity == "error"]
    if deployment is None or errors:
        raise ConfigError(errors or problems)
    return deployment
