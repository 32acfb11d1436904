"""A deployment as the communications office edits it: settings, playbooks, channels,
templates and approvals (contract section 1), loaded together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broadcaster.channels.settings import ChannelConfig, load_channels
from broadcaster.config import Settings, config_path, read_settings
from broadcaster.messages import Renderer
from broadcaster.playbooks import Playbook, load_playbooks
from broadcaster.problems import ConfigError, Problem, display_path
from broadcaster.templating import APPROVALS_FILE, Approvals, TemplateFolder


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    config_file: Path
    playbooks: dict[str, Playbook]
    channels: dict[str, ChannelConfig]
    templates: TemplateFolder
    approvals: Approvals

    @property
    def base_dir(self) -> Path:
        return self.config_file.parent

    def show(self, path: Path) -> str:
        return display_path(path, self.base_dir)

    def primary_language(self) -> str:
        """The language notices go out in: the first playbook's primary language."""
        first = next(iter(self.playbooks.values()), None)
        return first.primary_language if first is not None else "en"

    def renderer(self) -> Renderer:
        return Renderer(self.templates, self.approvals, self.settings.drill.prefix)


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
