"""The `broadcaster` command: thin wrappers that parse arguments and call the modules."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import aiohttp
import typer
from jinja2 import TemplateError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from broadcaster import accounts
from broadcaster.audit import (
    NotFound,
    entries_json,
    json_lines,
    read_everything,
    read_trail,
    trail_text,
)
from broadcaster.backup import BackupRefused, Copied, back_up
from broadcaster.backup import restore as restore_store
from broadcaster.config import Settings, config_path, read_settings
from broadcaster.daemon import Daemon, StartupRefused
from broadcaster.deployment import Deployment, load_deployment
from broadcaster.drill import render_text, run_drill, write_report
from broadcaster.durations import parse_duration
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
from broadcaster.reload import load_usable
from broadcaster.report import build_report, read_incident, render_html, render_json
from broadcaster.reports import report_stem, reports_folder, write_new
from broadcaster.status import (
    alert_detail,
    alerts_list,
    circuits_table,
    read_refusals,
    read_status,
    refusals_text,
)
from broadcaster.store import open_store
from broadcaster.store.base import Store
from broadcaster.tasks import NoTask, mark_done
from broadcaster.templating import (
    EMPTY_APPROVER,
    ApprovalsBroken,
    TemplateFolder,
    record_approvals,
)
from broadcaster.text_hygiene import person_name
from broadcaster.triggering import build_trigger, publish_once
from broadcaster.validation import PORTABLE_SHORT_TYPES
from broadcaster.validation import validate as validate_deployment
from broadcaster.verdict import publish_and_wait

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
    try:
        recorded = record_approvals(folder, templates, by, date.today())
    except ApprovalsBroken as exc:
        for problem in exc.problems:
            err.print(Text(str(problem)))
        raise _fail("fix approvals.yaml first", 1) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    for r in recorded:
        state = (
            "approved for live alerts" if r.refusal is None else f"not yet usable live: {r.refusal}"
        )
        names = ", ".join(r.approval.approved_by)
        out.print(Text(f"{r.key}: sha256 {r.approval.sha256[:12]}…, by {names} - {state}"))


@app.command()
def schema(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="write the three .schema.json files here (default: stdout)"),
    ] = None,
) -> None:
    """JSON Schemas of broadcaster.yaml, a playbook and a channel file, for editors."""
    from broadcaster import schemas  # imported here: this command is the only user

    if out_dir is None:
        typer.echo(schemas.dumps(schemas.schemas()), nl=False)  # exact bytes, no wrapping
        return
    for path in schemas.write(out_dir):
        out.print(Text(f"wrote {path}"))


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
    try:
        deployment = load_usable(config).deployment  # broken playbooks/channels: set aside
    except ConfigError as exc:
        raise _fail(
            f"{exc}\nthe settings have errors; `broadcaster validate` lists them all"
        ) from None
    try:
        code = asyncio.run(Daemon(deployment, dry_run=dry_run).run())
    except StartupRefused as exc:
        raise _fail(f"cannot start the broadcaster: {exc}", exc.code) from None
    except Exception as exc:  # start-up failed: say why in one line, not a traceback
        raise _fail(f"cannot start the broadcaster: {exc}", 1) from None
    if code:
        raise typer.Exit(code)


WaitOption = Annotated[
    str, typer.Option("--wait", help="how long to wait for the daemon's verdict, e.g. 10s")
]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="publish and exit 0, without waiting for a verdict")
]


def _publish(
    kind: Literal["trigger", "retract"],
    subject: str,
    payload: dict[str, object],
    settings: Settings,
    wait: str,
    no_wait: bool,
) -> None:
    """Publish, then print the daemon's verdict and exit 0 (accepted), 2 (refused) or 3
    (no verdict in time); with --no-wait exit 0 once the broker has it."""
    try:
        seconds = parse_duration(wait).total_seconds()
    except ValueError as exc:
        raise _fail(f"--wait: {exc}") from None
    body = json.dumps(payload, ensure_ascii=False)
    topic = f"{settings.mqtt.topic_prefix}/{kind}"
    try:
        if no_wait:
            asyncio.run(publish_once(settings.mqtt, topic, body))
            out.print(Text(f"published {kind} {subject} on {topic} (not waiting for a verdict)"))
            return
        verdict = asyncio.run(publish_and_wait(settings.mqtt, kind, subject, body, seconds))
    except Exception as exc:  # the broker is unreachable or refused us
        raise _fail(f"could not publish to {broker_address(settings.mqtt)[:2]}: {exc}", 1) from None
    line = Text(verdict.describe(subject, seconds))
    (out if verdict.outcome == "accepted" else err).print(line)
    if verdict.exit_code:
        raise typer.Exit(verdict.exit_code)


@app.command()
def trigger(
    scenario: Annotated[str, typer.Argument(help="playbook id, e.g. major_fire")],
    mode: Annotated[str, typer.Option(help="live or drill (required: there is no default)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    alert_id: Annotated[str | None, typer.Option("--id", help="default: a new unique id")] = None,
    stage: Annotated[str | None, typer.Option(help="default: the playbook's first stage")] = None,
    incident: Annotated[str | None, typer.Option(help="default: the id")] = None,
    wait: WaitOption = "10s",
    no_wait: NoWaitOption = False,
    config: ConfigOption = None,
) -> None:
    """Publish a (signed) trigger on MQTT, as the fire brigade's dispatch system does, and
    wait for the daemon's verdict: exit 0 accepted, 2 refused, 3 no verdict in time."""
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
    if "signature" not in payload:
        err.print(Text("note: unsigned (no security.trigger_secret set)"))
    _publish("trigger", str(payload["id"]), payload, settings, wait, no_wait)


@app.command()
def status(
    alert_id: Annotated[str | None, typer.Argument(help="one alert in detail")] = None,
    limit: Annotated[int, typer.Option(help="how many recent alerts")] = 20,
    refused: Annotated[bool, typer.Option("--refused", help="refused input instead")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="a live view: open alerts and channel health")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Alerts and their deliveries, from the store; or the refused input (--refused)."""
    if watch:
        try:
            deployment = load_usable(config).deployment
        except ConfigError as exc:
            raise _fail(f"{exc}\n`broadcaster validate` lists every error", 1) from None
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the view
            asyncio.run(_watch(deployment, limit))
        return
    settings = _settings(config)
    base = config_path(config).resolve().parent
    if refused:
        try:
            found = asyncio.run(read_refusals(settings.store.url, base, limit))
        except Exception as exc:
            raise _fail(f"cannot read the store {settings.store.url}: {exc}", 1) from None
        out.print(refusals_text(found))
        return
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


async def _watch(deployment: Deployment, limit: int) -> None:
    from rich.live import Live

    from broadcaster.watch import frames

    store = open_store(deployment.settings.store.url, deployment.base_dir)
    await store.open()
    try:
        if not out.is_terminal:  # piped or logged: each view printed after the last
            async for view in frames(store, deployment, limit):
                out.print(view)
                out.file.flush()
            return
        with Live(console=out, auto_refresh=False) as live:
            async for view in frames(store, deployment, limit):
                live.update(view, refresh=True)
    finally:
        await store.close()


@app.command()
def selftest(
    playbook: Annotated[
        str | None, typer.Option(help="default: selftest.playbook of broadcaster.yaml")
    ] = None,
    stage: Annotated[str | None, typer.Option(help="default: the playbook's first stage")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the self-test now on the running daemon: a drill to every channel set up for
    drills; exit 0 when each answered, 1 when one did not, 2 when the daemon cannot."""
    settings = _settings(config)
    if settings.http.api_token is None:
        raise _fail("the self-test is asked for over the HTTP API: set http.api_token", 2)
    body: dict[str, object] = {}
    if playbook is not None:
        try:
            params = parse_param_args(param or [])
        except ValueError as exc:
            raise _fail(str(exc), 2) from None
        body = {"playbook": playbook, "stage": stage, "params": params}
    url = f"http://{settings.http.listen}/api/selftest"
    try:
        status, answer = asyncio.run(_post_json(url, body, settings.http.api_token))
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        raise _fail(f"cannot reach the daemon at {url}: {exc}", 2) from None
    if status != 200:
        raise _fail(f"the daemon refused: {answer.get('detail', status)}", 2)
    alert = str(answer["alert_id"])
    if answer.get("refused"):
        raise _fail(f"self-test {alert} was refused: {answer['refused']}", 1)
    for channel in answer["answered"]:
        out.print(Text(f"{channel}: answered", style="green"))
    for channel, why in dict(answer["failed"]).items():
        out.print(Text(f"{channel}: did not answer: {why}", style="bold red"))
    if answer["failed"]:
        raise _fail(f"self-test {alert}: {len(answer['failed'])} channel(s) did not answer", 1)
    out.print(Text(f"self-test {alert}: every channel set up for drills answered"))


async def _post_json(url: str, body: dict[str, object], token: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=600)  # the drill runs to its end first
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(url, json=body, headers=headers) as answer,
    ):
        data: dict[str, Any] = await answer.json(content_type=None)
        return answer.status, data


@app.command()
def retract(
    alert_id: Annotated[str, typer.Argument(help="the alert to retract")],
    reason: Annotated[str, typer.Option(help="why: shown in the correction on every channel")],
    wait: WaitOption = "10s",
    no_wait: NoWaitOption = False,
    config: ConfigOption = None,
) -> None:
    """Retract a false alarm: publish a signed retraction on MQTT (no confirmation) and
    wait for the verdict: exit 0 retracted, 2 refused, 3 no verdict in time."""
    settings = _settings(config)
    request: dict[str, object] = {
        "alert_id": alert_id,
        "issued_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "reason": reason.strip(),
    }
    if settings.security.trigger_secret is not None:
        request["signature"] = sign(request, settings.security.trigger_secret)
    _publish("retract", alert_id, request, settings, wait, no_wait)


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


@app.command()
def audit(
    alert_id: Annotated[
        str | None,
        typer.Argument(help="one alert's trail (none: refused input and the daemon's events)"),
    ] = None,
    incident: Annotated[
        str | None,
        typer.Option("--incident", help="every alert of an incident, corrections included"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text")] = False,
    export: Annotated[
        str | None,
        typer.Option(
            "--export",
            metavar="FILE|-",
            help="the whole trail as JSON lines, one entry each, oldest first, into a new "
            "FILE (- for stdout): for the archive",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """The audit trail: every event with its time, actor and detail, oldest first."""
    if alert_id is not None and incident is not None:
        raise _fail("give an ALERT_ID or --incident, not both")
    settings = _settings(config)
    base = config_path(config).resolve().parent
    if export is not None:
        if alert_id is not None or incident is not None or as_json:
            raise _fail("--export writes the whole trail: give no ALERT_ID, --incident or --json")
        _export_audit(settings.store.url, base, export)
        return
    try:
        entries = asyncio.run(
            read_trail(settings.store.url, base, alert_id=alert_id, incident=incident)
        )
    except NotFound as exc:
        raise _fail(f"{exc.args[0]}; `broadcaster status` lists the alerts", 1) from None
    except Exception as exc:
        raise _fail(f"cannot read the store {settings.store.url}: {exc}", 1) from None
    if as_json:
        out.print(entries_json(entries), markup=False, highlight=False)
        return
    if not entries:
        what = "this alert" if alert_id else "this incident" if incident else "no alert"
        out.print(Text(f"no audit entries for {what}", style="yellow"))
        return
    out.print(trail_text(entries, show_alert=incident is not None), highlight=False)


def _export_audit(url: str, base: Path, export: str) -> None:
    try:
        lines = json_lines(asyncio.run(read_everything(url, base)))
    except Exception as exc:
        raise _fail(f"cannot read the store {url}: {exc}", 1) from None
    if export == "-":
        typer.echo(lines, nl=False)  # the exact lines, no wrapping
        return
    try:
        with Path(export).open("x", encoding="utf-8") as file:  # an archive is never overwritten
            file.write(lines)
    except FileExistsError:
        raise _fail(f"{export} exists; the export goes into a new file", 1) from None
    except OSError as exc:
        raise _fail(f"cannot write {export}: {exc}", 1) from None
    count = lines.count("\n")
    err.print(Text(f"wrote {count} audit {'entry' if count == 1 else 'entries'} to {export}"))


def _copy_store(
    config: Path | None, verb: str, work: Callable[[str, Path], Copied], refused: str
) -> None:
    """Run a backup or a restore on the configured store and say what was written."""
    settings = _settings(config)
    base = config_path(config).resolve().parent
    try:
        copied = work(settings.store.url, base)
    except (BackupRefused, ValueError) as exc:
        raise _fail(f"{refused}: {exc}", 1) from None
    except (sqlite3.Error, OSError) as exc:
        raise _fail(f"{refused}, it failed: {exc}", 1) from None
    entries = "entry" if copied.audit_entries == 1 else "entries"
    line = Text(
        f"{verb} {copied.path}: {copied.alerts} alert(s), {copied.audit_entries} audit "
        f"{entries}, {copied.size / 1024:.1f} KiB"
    )
    if copied.released:
        line.append(f"; {copied.released} delivery claim(s) let go, for the next daemon")
    out.print(line)


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="the new backup file", dir_okay=False)],
    force: Annotated[bool, typer.Option("--force", help="replace an existing FILE")] = False,
    config: ConfigOption = None,
) -> None:
    """Copy the SQLite store into FILE, online (SQLite's backup API: consistent while the
    daemon writes). A Redis store is backed up by Redis (docs/operations.md)."""
    _copy_store(
        config, "wrote", lambda url, base: back_up(url, base, file, force=force), "no backup"
    )


@app.command()
def restore(
    file: Annotated[
        Path, typer.Argument(help="a backup from `broadcaster backup`", dir_okay=False)
    ],
    force: Annotated[
        bool, typer.Option("--force", help="replace the existing store (no daemon may run on it)")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Copy a backup into the configured SQLite store; only while no daemon runs on it."""
    _copy_store(
        config,
        "restored",
        lambda url, base: restore_store(file, url, base, force=force),
        "not restored",
    )


@app.command()
def report(
    incident: Annotated[str, typer.Argument(help="the incident id (a trigger's incident or id)")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="folder for the JSON and HTML files (default: "
            "$XDG_STATE_HOME/broadcaster/reports, else ~/.local/state/broadcaster/reports)",
            file_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """After-action report of an incident, every stage and correction: JSON and HTML."""
    settings = _settings(config)
    file = config_path(config)
    try:
        record = asyncio.run(read_incident(settings.store.url, file.resolve().parent, incident))
    except Exception as exc:
        raise _fail(f"cannot read the store {settings.store.url}: {exc}", 1) from None
    if record is None:
        raise _fail(f"no incident {incident!r} (no alert belongs to it)", 1)
    try:  # the playbooks' names only make the report friendlier; a broken file is no reason
        names = {
            pid: p.name.get("en", p.name[p.primary_language])
            for pid, p in load_deployment(config).playbooks.items()
        }
    except (ConfigError, OSError):
        names = {}
    record = replace(record, scenario_names=names)
    data = build_report(record, datetime.now().astimezone())
    folder = reports_folder(out_dir)
    stem = report_stem(f"incident-{incident}", secrets.token_hex(3))  # two in one second
    try:
        json_path = write_new(folder / f"{stem}.json", render_json(data))
        html_path = write_new(folder / f"{stem}.html", render_html(data))
    except OSError as exc:
        raise _fail(f"cannot write the report into {folder}: {exc}", 1) from None
    summary = data["summary"]
    mark = "EXERCISE / ÜBUNG " if data["exercise"] else ""
    out.print(
        Text(
            f"{mark}incident {incident}: {summary['alerts']} alert(s), "
            f"{summary['corrections']} correction(s), {summary['sent']} of "
            f"{summary['deliveries']} deliveries sent"
        )
    )
    out.print(Text(f"report: {json_path}"))
    out.print(Text(f"report: {html_path}"))


@app.command("vapid-keys")
def vapid_keys() -> None:
    """A new VAPID key pair for a webpush channel: the private key for the environment
    (VAPID_PRIVATE_KEY), the public key the warning page hands to browsers."""
    from broadcaster.vapid import new_key_pair  # imported here: this command is the only user

    private, public = new_key_pair()
    typer.echo(f"VAPID_PRIVATE_KEY={private}")
    typer.echo(f"# application server key (public; the page serves it): {public}")
    typer.echo(
        "# Keep the private key secret. Changing it later makes every browser subscribe again."
    )


task_app = typer.Typer(help="Manual tasks: what a person must do by hand on a channel.")
app.add_typer(task_app, name="task")


@task_app.command("done")
def task_done(
    alert_id: Annotated[str, typer.Argument(help="the retracted alert")],
    channel_id: Annotated[str, typer.Argument(help="the channel whose task was done")],
    by: Annotated[str, typer.Option(help="who did it (for the audit trail)")] = "",
    config: ConfigOption = None,
) -> None:
    """Mark a manual task done (e.g. the retracted Instagram post was deleted by hand)."""
    settings = _settings(config)
    base = config_path(config).resolve().parent
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user entry (a container)
        user = "unknown"
    who = by.strip() or f"cli:{user}"
    try:
        done = asyncio.run(mark_done(settings.store.url, base, alert_id, channel_id, who))
    except NoTask as exc:
        raise _fail(f"{exc}; `broadcaster status {alert_id}` shows its tasks", 1) from None
    except Exception as exc:
        raise _fail(f"cannot write the store {settings.store.url}: {exc}", 1) from None
    assert done.manual_task is not None
    out.print(Text(f"done: {done.manual_task.task} ({alert_id} on {channel_id}, by {who})"))


user_app = typer.Typer(help="Console accounts: who may sign in to the newsroom console.")
app.add_typer(user_app, name="user")
T = TypeVar("T")
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from stdin (one line)")
]


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user entry (a container)
        return "cli:unknown"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return typer.get_text_stream("stdin").readline().removesuffix("\n").removesuffix("\r")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _on_accounts(config: Path | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the deployment's store; an AccountError is a clear exit 1."""
    settings = _settings(config)
    base = config_path(config).resolve().parent

    async def run_it() -> T:
        store = open_store(settings.store.url, base)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run_it())
    except accounts.AccountError as exc:
        raise _fail(str(exc), 1) from None
    except Exception as exc:
        raise _fail(f"cannot use the store {settings.store.url}: {exc}", 1) from None


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="the account name, e.g. k.becker")],
    role: Annotated[str, typer.Option(help="viewer, editor, officer or admin")],
    officer: Annotated[
        str | None, typer.Option(help="the duty officer in broadcaster.yaml this person is")
    ] = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Add a console account (the password is prompted twice, or read from stdin)."""
    for problem in (accounts.name_problem(name), accounts.role_problem(role)):
        if problem is not None:
            raise _fail(problem)
    officers = [o.name for o in _settings(config).duty_officers]
    if officer is not None and officer not in officers:
        known = ", ".join(repr(o) for o in officers) or "none"
        raise _fail(
            f"unknown duty officer {officer!r}: use a name of duty_officers in "
            f"broadcaster.yaml (known: {known})"
        )
    password = _password(password_stdin)
    if (problem := accounts.password_problem(password)) is not None:
        raise _fail(problem)
    who = _cli_actor()
    added = _on_accounts(
        config,
        lambda store: accounts.add_account(
            store, name, role, password, officer=officer, officers=officers, by=who
        ),
    )
    linked = f", duty officer {added.officer}" if added.officer else ""
    out.print(Text(f"added {added.name} ({added.role}{linked})"))


@user_app.command("list")
def user_list(config: ConfigOption = None) -> None:
    """Every console account with its role and state (never a password hash)."""
    found = _on_accounts(config, lambda store: store.list_accounts())
    if not found:
        out.print(Text("no accounts yet; `broadcaster user add NAME --role ROLE`", style="yellow"))
        return
    table = Table("name", "role", "duty officer", "state", "failed sign-ins", "created")
    for account in found:
        table.add_row(
            account.name,
            account.role,
            account.officer or "",
            accounts.account_state(account),
            str(account.failed_logins),
            f"{account.created_at.astimezone():%Y-%m-%d %H:%M}",
        )
    out.print(table)


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="the account")], config: ConfigOption = None
) -> None:
    """Disable an account: it cannot sign in, and its open sessions end at once."""
    who = _cli_actor()
    _on_accounts(config, lambda store: accounts.set_disabled(store, name, True, by=who))
    out.print(Text(f"disabled {name}"))


@user_app.command("enable")
def user_enable(
    name: Annotated[str, typer.Argument(help="the account")], config: ConfigOption = None
) -> None:
    """Enable a disabled account again."""
    who = _cli_actor()
    _on_accounts(config, lambda store: accounts.set_disabled(store, name, False, by=who))
    out.print(Text(f"enabled {name}"))


@user_app.command("reset")
def user_reset(
    name: Annotated[str, typer.Argument(help="the account")],
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """A new password: unlocks the account and ends its open sessions."""
    _settings(config)  # a broken config fails before the password is asked
    password = _password(password_stdin)
    if (problem := accounts.password_problem(password)) is not None:
        raise _fail(problem)
    who = _cli_actor()
    _on_accounts(config, lambda store: accounts.reset_password(store, name, password, by=who))
    out.print(Text(f"new password set for {name}; it is unlocked and its sessions ended"))


def _settings(config: Path | None) -> Settings:
    settings, problems = read_settings(config_path(config))
    if settings is None or problems:
        for problem in problems:
            err.print(Text(str(problem)))
        raise _fail("cannot read the settings", 1)
    return settings


def main() -> None:
    app()
