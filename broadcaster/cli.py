"""The `broadcaster` command: thin wrappers that parse arguments and call the modules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from jinja2 import TemplateError
from rich.console import Console
from rich.text import Text

from broadcaster.config import Settings, config_path, read_settings
from broadcaster.daemon import Daemon, StartupRefused
from broadcaster.deployment import Deployment, load_deployment
from broadcaster.drill import render_text, run_drill, write_report
from broadcaster.intake import sign
from broadcaster.limits import measure
from broadcaster.logging import configure_logging
from broadcaster.messages import (
    AlertContext,
    TemplateNotApproved,
    cannot_render,
    channel_messages,
)
from broadcaster.mqtt import broker_address
from broadcaster.playbooks import ParamError, Playbook, validate_params
from broadcaster.problems import ConfigError
from broadcaster.status import alert_detail, alerts_list, circuits_table, read_status
from broadcaster.templating import APPROVALS_FILE, EMPTY_APPROVER, Approvals, TemplateFolder
from broadcaster.text_hygiene import person_name
from broadcaster.triggering import build_trigger, publish_once
from broadcaster.validation import PORTABLE_SHORT_TYPES
from broadcaster.validation import validate as validate_deployment

app = typer.Typer(
    help="Emergency broadcaster: one confirmed trigger, every channel at once.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="broadcaster.yaml (default: $BROADCASTER_CONFIG, else ./broadcaster.yaml)",
        dir_okay=False,
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(Text(message, style="bold red"))
    return typer.Exit(code)


def _deployment(config: Path | None) -> Deployment:
    try:
        return load_deployment(config)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(Text(str(problem)))
        raise _fail(
            "the configuration has errors; `broadcaster validate` lists them all", 1
        ) from None


def parse_param_args(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {pair!r}: write it as name=value")
        params[name.strip()] = value
    return params


def _playbook(deployment: Deployment, scenario: str, stage: str | None) -> tuple[Playbook, str]:
    playbook = deployment.playbooks.get(scenario)
    if playbook is None:
        known = ", ".join(sorted(deployment.playbooks)) or "none"
        raise _fail(f"unknown scenario {scenario!r} (playbooks: {known})")
    stage = stage or playbook.default_stage
    if stage not in playbook.stages:
        raise _fail(f"unknown stage {stage!r} of {scenario} (stages: {', '.join(playbook.stages)})")
    return playbook, stage


@app.command()
def validate(config: ConfigOption = None) -> None:
    """Check playbooks, templates, limits, approvals and channels; exit 1 on any error."""
    problems = validate_deployment(config)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        out.print(Text(str(problem), style=style), soft_wrap=True)
    if errors:
        out.print(Text(f"{len(errors)} error(s)", style="bold red"))
        raise typer.Exit(1)
    out.print(Text(f"ok ({len(problems)} warning(s))", style="bold green"))


@app.command()
def render(
    scenario: Annotated[str, typer.Argument(help="playbook id, e.g. major_fire")],
    stage: Annotated[str | None, typer.Option(help="default: the playbook's first stage")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    mode: Annotated[str, typer.Option(help="live or drill")] = "live",
    incident: Annotated[str, typer.Option(help="incident id shown in the texts")] = "PREVIEW",
    config: ConfigOption = None,
) -> None:
    """Print every channel's text, its length and its limit."""
    if mode not in ("live", "drill"):
        raise _fail(f"--mode must be live or drill, not {mode!r}")
    alert_mode: Literal["live", "drill"] = "live" if mode == "live" else "drill"
    deployment = _deployment(config)
    playbook, stage = _playbook(deployment, scenario, stage)
    try:
        params = validate_params(playbook, parse_param_args(param or []))
    except ParamError as exc:
        raise _fail("invalid params:\n  " + "\n  ".join(exc.messages)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    alert = AlertContext(playbook, stage, params, alert_mode, incident, datetime.now().astimezone())
    try:
        rendered = deployment.renderer().render(alert)
    except TemplateNotApproved as exc:
        lines = "\n  ".join(f"{key} {why}" for key, why in exc.refusals.items())
        raise _fail(
            f"template_not_approved: a live alert cannot use\n  {lines}\n"
            "(`--mode drill` previews unapproved templates)",
            1,
        ) from None
    except (TemplateError, OSError) as exc:
        why = cannot_render(exc, deployment.templates, deployment.show)
        raise _fail(f"{why}\n(`broadcaster validate` lists every problem)") from None
    out.print(_render_heading(playbook, stage, params, alert_mode))
    for key, why in rendered.unapproved.items():
        out.print(Text(f"not approved (drill only): {key} {why}", style="yellow"))
    messages = channel_messages(playbook, deployment.channels, rendered)
    if not messages:
        out.print(Text("no enabled public channel uses this playbook", style="yellow"))
    too_long = False
    for m in messages:
        ok = m.measurement.fits
        too_long |= not ok
        # No panel and no wrapping: the text is printed whole, exactly as it goes out,
        # however narrow the terminal (the terminal itself wraps long lines).
        heading = Text(f"\n── {m.channel_id} ({m.channel_type}, {m.language}, {m.variant}) · ")
        heading.append(str(m.measurement), style="green" if ok else "bold red")
        if not ok:
            heading.append("  TOO LONG", style="bold red")
        out.print(heading)
        out.print(Text(m.text))
    out.print()
    for lang, texts in rendered.texts.items():
        out.print(Text(f"title [{lang}]: {texts.title}", style="bold"))
        sizes = [(kind, measure(kind, texts.short)) for kind in PORTABLE_SHORT_TYPES]
        out.print(Text(f"short [{lang}] on " + ", ".join(f"{kind} {m}" for kind, m in sizes)))
    if too_long:
        raise typer.Exit(1)


def _render_heading(
    playbook: Playbook, stage: str, params: dict[str, Any], mode: Literal["live", "drill"]
) -> Text:
    """Scenario, stage and the params given, with their labels in every language."""

    def labels(label_of: Callable[[str, str], str], name: str) -> str:
        shown = dict.fromkeys(label_of(name, lang) for lang in playbook.languages)
        return " / ".join(shown)

    heading = Text(f"{playbook.name[playbook.primary_language]} ({playbook.id}), ", style="bold")
    heading.append(f"stage {stage} ({labels(playbook.stage_label, stage)}), ")
    heading.append(mode.upper(), style="bold")
    for name, value in params.items():
        if value is not None and value != "":
            heading.append(f"\n  {name} ({labels(playbook.param_label, name)}): {value}")
    return heading


@app.command()
def approve(
    templates: Annotated[list[str], typer.Argument(help="e.g. major_fire/warning/short.de.j2")],
    by: Annotated[str, typer.Option("--by", help="the approver's name")],
    config: ConfigOption = None,
) -> None:
    """Record one approval of each template's current bytes (two different names are needed)."""
    if not person_name(by):
        raise _fail(f"--by {by!r}: {EMPTY_APPROVER}; give your name, e.g. --by 'A. Schmidt'")
    # Only the templates folder is needed: an unrelated broken file must not block approving.
    file = config_path(config)
    settings, problems = read_settings(file)
    if settings is None:
        for problem in problems:
            err.print(Text(str(problem)))
        raise _fail("cannot read the settings", 1)
    folder = TemplateFolder(file.resolve().parent / settings.paths.templates)
    approvals, problems = Approvals.load(folder.root / APPROVALS_FILE)
    if problems:
        for problem in problems:
            err.print(Text(str(problem)))
        raise _fail("fix approvals.yaml first", 1)
    try:
        keys = [folder.key_of(t) for t in templates]
    except ValueError as exc:
        raise _fail(str(exc)) from None
    for key in keys:
        source = folder.load(key)
        approval = approvals.approve(source, by, date.today())
        why = approvals.refusal(source)
        state = "approved for live alerts" if why is None else f"not yet usable live: {why}"
        names = ", ".join(approval.approved_by)
        out.print(Text(f"{key}: sha256 {approval.sha256[:12]}…, by {names} - {state}"))
    approvals.save()


@app.command()
def run(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="contact no channel at all")] = False,
    json_logs: Annotated[
        bool | None, typer.Option("--json-logs/--console-logs", help="default: JSON unless a tty")
    ] = None,
) -> None:
    """Run the daemon: MQTT and HTTP intake, confirmation, fan-out to every channel."""
    configure_logging(json=json_logs)
    deployment = _deployment(config)
    try:
        code = asyncio.run(Daemon(deployment, dry_run=dry_run).run())
    except StartupRefused as exc:
        raise _fail(f"cannot start the broadcaster: {exc}", exc.code) from None
    except Exception as exc:  # start-up failed: say why in one line, not a traceback
        raise _fail(f"cannot start the broadcaster: {exc}", 1) from None
    if code:
        raise typer.Exit(code)


@app.command()
def trigger(
    scenario: Annotated[str, typer.Argument(help="playbook id, e.g. major_fire")],
    mode: Annotated[str, typer.Option(help="live or drill (required: there is no default)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    alert_id: Annotated[str | None, typer.Option("--id", help="default: a new unique id")] = None,
    stage: Annotated[str | None, typer.Option(help="default: the playbook's first stage")] = None,
    incident: Annotated[str | None, typer.Option(help="default: the id")] = None,
    config: ConfigOption = None,
) -> None:
    """Publish a (signed) trigger on MQTT, as the fire brigade's dispatch system does."""
    if mode not in ("live", "drill"):
        raise _fail(f"--mode must be live or drill, not {mode!r}")
    settings = _settings(config)
    try:
        params = parse_param_args(param or [])
    except ValueError as exc:
        raise _fail(str(exc)) from None
    payload = build_trigger(
        scenario,
        mode,
        params,
        alert_id=alert_id,
        stage=stage,
        incident=incident,
        secret=settings.security.trigger_secret,
    )
    topic = f"{settings.mqtt.topic_prefix}/trigger"
    try:
        asyncio.run(publish_once(settings.mqtt, topic, json.dumps(payload, ensure_ascii=False)))
    except Exception as exc:  # the broker is unreachable or refused us
        raise _fail(f"could not publish to {broker_address(settings.mqtt)[:2]}: {exc}", 1) from None
    signed = "signed" if "signature" in payload else "unsigned (no trigger_secret)"
    out.print(Text(f"published {signed} trigger {payload['id']} ({scenario}, {mode}) on {topic}"))


@app.command()
def status(
    alert_id: Annotated[str | None, typer.Argument(help="one alert in detail")] = None,
    limit: Annotated[int, typer.Option(help="how many recent alerts")] = 20,
    config: ConfigOption = None,
) -> None:
    """Alerts and their deliveries, from the store."""
    settings = _settings(config)
    base = config_path(config).resolve().parent
    try:
        alerts, circuits = asyncio.run(read_status(settings.store.url, base, alert_id, limit))
    except Exception as exc:
        raise _fail(f"cannot read the store {settings.store.url}: {exc}", 1) from None
    if alert_id is not None and not alerts:
        raise _fail(f"no alert {alert_id!r}", 1)
    if alert_id is None:
        out.print(alerts_list(alerts))
        if (paused := circuits_table(circuits)) is not None:
            out.print(paused)
    else:
        out.print(alert_detail(*alerts[0]))


@app.command()
def retract(
    alert_id: Annotated[str, typer.Argument(help="the alert to retract")],
    reason: Annotated[str, typer.Option(help="why: shown in the correction on every channel")],
    config: ConfigOption = None,
) -> None:
    """Retract a false alarm: publish a signed retraction on MQTT (no confirmation)."""
    settings = _settings(config)
    request: dict[str, str] = {
        "alert_id": alert_id,
        "issued_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "reason": reason.strip(),
    }
    if settings.security.trigger_secret is not None:
        request["signature"] = sign(request, settings.security.trigger_secret)
    topic = f"{settings.mqtt.topic_prefix}/retract"
    try:
        asyncio.run(publish_once(settings.mqtt, topic, json.dumps(request, ensure_ascii=False)))
    except Exception as exc:
        raise _fail(f"could not publish to {broker_address(settings.mqtt)[:2]}: {exc}", 1) from None
    out.print(Text(f"published retraction of {alert_id} on {topic}"))


@app.command()
def drill(
    scenario: Annotated[str, typer.Argument(help="playbook id, e.g. major_fire")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    stage: Annotated[str | None, typer.Option(help="default: the playbook's first stage")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="folder for the JSON and HTML report (default: $XDG_STATE_HOME/broadcaster/"
            "reports, else ~/.local/state/broadcaster/reports)",
            file_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """A full drill in-process and in dry-run (nothing is contacted), with a timeline report."""
    configure_logging(level="WARNING")  # the report is the output; the log only for trouble
    deployment = _deployment(config)
    _playbook(deployment, scenario, stage)
    try:
        params = parse_param_args(param or [])
    except ValueError as exc:
        raise _fail(str(exc)) from None
    report = asyncio.run(run_drill(deployment, scenario, params, stage))
    out.print(Text(render_text(report)))
    try:
        json_path, html_path = write_report(report, out_dir)
    except OSError as exc:
        raise _fail(f"cannot write the report: {exc} (choose a folder with --out DIR)", 1) from None
    out.print(Text(f"\nreport: {json_path}\n        {html_path}", style="bold"))
    if report.outcome not in ("sent",):
        raise typer.Exit(1)


def _settings(config: Path | None) -> Settings:
    settings, problems = read_settings(config_path(config))
    if settings is None or problems:
        for problem in problems:
            err.print(Text(str(problem)))
        raise _fail("cannot read the settings", 1)
    return settings


def main() -> None:
    app()
