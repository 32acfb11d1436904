"""What an alert would say on each channel, rendered by the daemon's own renderer and
measured by each channel kind's own measure: the New alert form's live preview, and the
check it passes before anything is proposed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jinja2 import TemplateError

from broadcaster.deployment import Deployment
from broadcaster.limits import Measurement
from broadcaster.messages import (
    AlertContext,
    Mode,
    RenderedAlert,
    TemplateNotApproved,
    cannot_render,
    channel_messages,
)
from broadcaster.playbooks import Playbook, validate_params
from broadcaster.web.confirm import length_text
from broadcaster.web.console.params_form import param_problems


@dataclass(frozen=True)
class ChannelPreview:
    channel_id: str
    channel_type: str
    language: str
    title: str
    text: str
    measurement: Measurement
    dry_run: bool  # a drill does not reach it (drill: dry_run)

    @property
    def fits(self) -> bool:
        return self.measurement.fits

    def length(self, lang: str) -> str:
        """`212/280 gewichtete Zeichen`: in the reader's words, as on the confirm page."""
        return length_text(self.measurement, lang)


@dataclass
class Preview:
    problems: dict[str, str] = field(default_factory=dict)  # by param ("" for the whole)
    refusal: str = ""  # why the texts cannot be rendered (an unapproved template, ...)
    channels: list[ChannelPreview] = field(default_factory=list)
    unapproved: list[str] = field(default_factory=list)  # a drill may use them; listed

    @property
    def ready(self) -> bool:
        """Nothing in the way of proposing it: params right, texts rendered, all fit."""
        return not self.problems and not self.refusal and all(c.fits for c in self.channels)


def preview(
    deployment: Deployment,
    playbook: Playbook,
    stage: str,
    given: Mapping[str, str],
    mode: Mode,
    incident: str,
    issued_at: datetime,
) -> Preview:
    result = Preview(problems=param_problems(playbook, given))
    if result.problems:
        return result
    context = AlertContext(
        playbook, stage, validate_params(playbook, dict(given)), mode, incident, issued_at
    )
    try:
        rendered = deployment.renderer().render(context)
    except TemplateNotApproved as exc:
        result.refusal = str(exc)
        return result
    except (TemplateError, OSError) as exc:
        result.refusal = cannot_render(exc, deployment.templates, deployment.show)
        return result
    result.unapproved = sorted(rendered.unapproved)
    result.channels = channel_previews(deployment, playbook, rendered, mode)
    return result


def channel_previews(
    deployment: Deployment, playbook: Playbook, rendered: RenderedAlert, mode: Mode
) -> list[ChannelPreview]:
    """Each channel's message of `rendered`, measured by its kind (also an ad-hoc
    update's free texts: adhoc_form.py)."""
    shown = []
    for m in channel_messages(playbook, deployment.channels, rendered):
        channel = deployment.channels[m.channel_id]
        shown.append(
            ChannelPreview(
                channel_id=m.channel_id,
                channel_type=m.channel_type,
                language=m.language,
                title=m.title,
                text=m.text,
                measurement=m.measurement,
                dry_run=mode == "drill" and channel.drill != "send",
            )
        )
    return shown
