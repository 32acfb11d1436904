"""`broadcaster validate`: everything a communications office can get wrong, one line each.

Beyond parsing, every template is rendered with worst-case params (each string param
at its max_length, the drill prefix in front) and measured against the limit of every
channel that uses it, so a text never turns out too long during a real incident. The
params are filled per channel type with the character that weighs most in its count
(FILLS): `W` for characters and graphemes, `€` for SMS septets; characters outside
GSM-7 (Ł, CJK, emoji) are reported as one warning per playbook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateError, TemplateSyntaxError

from broadcaster import limits
from broadcaster.channels.kinds import KINDS, Measure
from broadcaster.channels.settings import WhatsappChannel
from broadcaster.deployment import Deployment, read_deployment
from broadcaster.limits import Measurement
from broadcaster.messages import (
    AlertContext,
    LanguageTexts,
    Mode,
    Renderer,
    channel_language,
    fan_out_channels,
)
from broadcaster.models import REASON_MAX_LENGTH
from broadcaster.playbooks import RESERVED_NAMES, ParamSpec, Playbook
from broadcaster.problems import Problem
from broadcaster.receipts import is_loopback
from broadcaster.templating import (
    APPROVALS_FILE,
    REQUIRED_VARIANTS,
    RETRACTION,
    RETRACTION_VARIANTS,
    VARIANTS,
    Approvals,
    TemplateSource,
    retraction_key,
    template_key,
)

# CAP guidance: a headline of at most 160 characters.
TITLE_MAX_LENGTH = 160
# Short texts must fit every kind that takes them by default, so an account added later
# does not break them.
PORTABLE_SHORT_TYPES = tuple(
    t for t, k in KINDS.items() if k.variant == "short" and k.length_limit is not None
)
WORST_CASE_ISSUED_AT = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)


@dataclass(frozen=True)
class Fill:
    """A character that every string param is filled with up to its max_length, chosen
    because it weighs most in some ways of counting (and so in every kind counted so)."""

    char: str
    name: str  # how a problem names it
    counts: frozenset[Measure] | None  # the ways of counting it is measured for; None: all
    # Outside GSM-7 and X's single-weight ranges: possible in a name from the control
    # room, but not in the German and English texts the sample playbooks expect. Text
    # over a limit only with such characters is a warning (per playbook), not an error.
    beyond: bool = False

    def applies_to(self, channel_type: str) -> bool:
        return self.counts is None or KINDS[channel_type].measure in self.counts


SMS, X, BLUESKY, TELEGRAM = (
    limits.measure_sms,
    limits.measure_x,
    limits.measure_bluesky,
    limits.measure_telegram,
)
PLAIN = Fill("W", "W", None)  # ASCII: the most graphemes and characters per code point
FILLS: tuple[Fill, ...] = (
    PLAIN,
    # 3GPP TS 23.038 extension table: two septets each, and the SMS stays GSM-7.
    Fill("€", "€ U+20AC (GSM-7 extension, 2 septets)", frozenset({SMS})),
    Fill("Ł", "Ł U+0141 (outside GSM-7)", frozenset({SMS}), True),
    # twitter-text v3: weight 2 outside its ranges; 3 UTF-8 bytes.
    Fill("漢", "漢 U+6F22 (CJK)", frozenset({X, BLUESKY}), True),
    # One code point, two UTF-16 units, four UTF-8 bytes, weight 2 on X.
    Fill("😀", "😀 U+1F600 (emoji)", frozenset({SMS, X, BLUESKY, TELEGRAM}), True),
)


def worst_case_params(playbook: Playbook, fill: Fill = PLAIN) -> dict[str, Any]:
    """Every param present and as long as it may be, string params made of `fill`."""
    return {name: _longest(spec, fill) for name, spec in playbook.params.items()}


def minimal_params(playbook: Playbook) -> dict[str, Any]:
    """Only the required params; optional ones at their default (None when they have none)."""
    return {
        name: _longest(spec, PLAIN) if spec.required else spec.default
        for name, spec in playbook.params.items()
    }


def _longest(spec: ParamSpec, fill: Fill) -> Any:
    match spec.type:
        case "string":
            return fill.char * (spec.max_length or 1)
        case "integer":
            return int(spec.max) if spec.max is not None else 999_999
        case "number":
            return float(spec.max) if spec.max is not None else 999_999.99
        case "boolean":
            return True
        case "time":
            return "23:59"
    return WORST_CASE_ISSUED_AT


def _weight(measured: tuple[Fill, Measurement]) -> tuple[bool, float]:
    """Over its limit first, then the share of the limit used (units differ by type)."""
    m = measured[1]
    return (not m.fits, m.count / m.limit if m.limit else float(m.count))


class _EveryBytes(Approvals):
    """Approvals are checked on their own; worst-case rendering looks at texts only."""

    def __init__(self) -> None:
        super().__init__(Path(APPROVALS_FILE), {})

    def refusal(self, source: TemplateSource) -> str | None:
        return None


class Validator:
    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment
        self.renderer = Renderer(
            deployment.templates,
            _EveryBytes(),
            deployment.settings.drill.prefix,
            deployment.settings.http.public_url,  # page_url's length counts
        )
        self.broken: set[str] = set()  # templates that cannot be parsed: not rendered again
        # (file, where, channel type) -> texts over a limit only with `beyond` fills
        self.beyond: dict[tuple[str, str, str], list[tuple[str, Fill, Measurement]]] = {}

    def tpl(self, key: str) -> str:
        return self.d.show(self.d.templates.path(key))

    def run(self) -> list[Problem]:
        problems = list(self.settings())
        for playbook in self.d.playbooks.values():
            problems += self.playbook(playbook)
        problems += self.retraction()
        problems += self.whatsapp_templates()
        problems += self.beyond_plain_text()
        problems += self.approvals()
        problems += self.stray_templates()
        return problems

    # -- settings and references -------------------------------------------------
    def settings(self) -> Iterator[Problem]:
        cfg = self.d.show(self.d.config_file)
        s = self.d.settings
        if s.security.trigger_secret is None:
            yield Problem(
                cfg,
                "security.trigger_secret",
                "is not set: unsigned triggers are accepted",
                "set it for production",
                "warning",
            )
        if s.http.api_token is None:
            yield Problem(
                cfg,
                "http.api_token",
                "is not set: every /api/* call is refused",
                "set it to use the HTTP API",
                "warning",
            )
        for i, officer in enumerate(s.duty_officers):
            for j, cid in enumerate(officer.notify):
                channel = self.d.channels.get(cid)
                if channel is None:
                    yield Problem(
                        cfg,
                        f"duty_officers[{i}].notify[{j}]",
                        f"names channel {cid!r}, which does not exist",
                        f"add channels/{cid}.yaml with audience: internal",
                    )
                elif channel.audience != "internal":
                    yield Problem(
                        cfg,
                        f"duty_officers[{i}].notify[{j}]",
                        f"channel {cid!r} is public: the confirm link would go to the public",
                        "use a channel with audience: internal",
                    )
                elif not channel.kind.capabilities.reaches_people:
                    yield Problem(
                        cfg,
                        f"duty_officers[{i}].notify[{j}]",
                        f"channel {cid!r} is a {channel.channel_type} channel: the confirm link "
                        "reaches nobody's phone"
                        + (" (it is written to the log)" if channel.channel_type == "log" else ""),
                        "fine for trials; use sms, telegram, email or webhook in production",
                        "warning" if channel.channel_type == "log" else "error",
                    )
        yield from self.card_url()
        needs_officer = [p.id for p in self.d.playbooks.values() if p.confirmation.mode != "none"]
        if needs_officer and not s.duty_officers:
            yield Problem(
                cfg,
                "duty_officers",
                f"is empty, but {', '.join(needs_officer)} need a duty officer's confirmation",
                "add at least one duty officer",
            )

    def card_url(self) -> Iterator[Problem]:
        """Meta fetches the share-pic cards from http.public_url: not from a local one."""
        # Imported here: the media route imports the deployment, which imports this module.
        from broadcaster.web.media import posts_card

        posting = sorted(cid for cid, c in self.d.channels.items() if c.enabled and posts_card(c))
        if posting and is_loopback(self.d.settings.http.public_url):
            yield Problem(
                self.d.show(self.d.config_file),
                "http.public_url",
                f"is {self.d.settings.http.public_url}: Meta cannot fetch the share-pic "
                f"cards of {', '.join(posting)} from there",
                "set it to the daemon's address on the internet; a local one does for trials only",
                "warning",
            )

    def playbook(self, playbook: Playbook) -> Iterator[Problem]:
        file = self.d.show(
            self.d.base_dir / self.d.settings.paths.playbooks / f"{playbook.id}.yaml"
        )
        if playbook.channels != "all":
            for i, cid in enumerate(playbook.channels):
                channel = self.d.channels.get(cid)
                if channel is None:
                    yield Problem(
                        file,
                        f"channels[{i}]",
                        f"names channel {cid!r}, which does not exist",
                        f"add channels/{cid}.yaml or remove it",
                    )
                elif channel.audience != "public":
                    yield Problem(
                        file,
                        f"channels[{i}]",
                        f"channel {cid!r} is internal (duty officers only)",
                        "list public channels only",
                    )
        for lang in playbook.languages:
            if lang not in self.d.settings.drill.prefix:
                yield Problem(
                    self.d.show(self.d.config_file),
                    "drill.prefix",
                    f"has no prefix for language {lang!r} (playbook {playbook.id})",
                    "add one, e.g. en: EXERCISE",
                    "warning",
                )
        for cid, channel in fan_out_channels(playbook, self.d.channels).items():
            if channel.language and channel.language not in playbook.languages:
                yield Problem(
                    self.d.show(self.d.base_dir / self.d.settings.paths.channels / f"{cid}.yaml"),
                    "language",
                    f"is {channel.language!r}, which playbook {playbook.id} lacks: "
                    f"it posts {playbook.primary_language!r} there",
                    "",
                    "warning",
                )
        allowed = set(playbook.params) | RESERVED_NAMES - {"reason"}
        for stage in playbook.stages:
            for lang in playbook.languages:
                for variant in VARIANTS:
                    key = template_key(playbook.id, stage, variant, lang)
                    if not self.d.templates.exists(key):
                        if variant in REQUIRED_VARIANTS:
                            yield Problem(
                                self.tpl(key),
                                "",
                                f"is missing ({variant} of stage {stage} in language {lang})",
                                "write the template",
                                subject=f"playbook:{playbook.id}",
                            )
                            self.broken.add(key)
                        continue
                    names = allowed - {"instruction"} if variant == "instruction" else allowed
                    yield from self.template_names(key, names, playbook)
            if not any(
                template_key(playbook.id, stage, v, lang) in self.broken
                for v in VARIANTS
                for lang in playbook.languages
            ):
                yield from self.worst_case(playbook, stage)

    def template_names(self, key: str, allowed: set[str], playbook: Playbook) -> Iterator[Problem]:
        try:
            used = self.d.templates.load(key).variables()
        except TemplateSyntaxError as exc:
            self.broken.add(key)
            yield Problem(
                self.tpl(key),
                f"line {exc.lineno}",
                f"template syntax: {exc.message}",
                subject=f"playbook:{playbook.id}",
            )
            return
        except UnicodeDecodeError:
            self.broken.add(key)
            yield Problem(
                self.tpl(key),
                "",
                "is not UTF-8 text",
                "save it as UTF-8",
                subject=f"playbook:{playbook.id}",
            )
            return
        for name in sorted(used - allowed):
            self.broken.add(key)
            params = ", ".join(playbook.params) or "none"
            yield Problem(
                self.tpl(key),
                name,
                f"unknown param {name!r} (playbook {playbook.id} defines: {params})",
                "add it to the playbook's params or fix the name",
                subject=f"playbook:{playbook.id}",
            )

    # -- worst-case rendering and limits ------------------------------------------
    def worst_case(self, playbook: Playbook, stage: str) -> Iterator[Problem]:
        runs: list[tuple[str, Fill | None, dict[str, Any]]] = [
            ("worst case", PLAIN, worst_case_params(playbook)),
            ("required params only", None, minimal_params(playbook)),
        ]
        runs += [
            (f"worst case filled with {fill.char}", fill, worst_case_params(playbook, fill))
            for fill in FILLS
            if fill is not PLAIN
        ]
        for mode in ("live", "drill"):
            filled: dict[Fill, dict[str, LanguageTexts]] = {}
            for label, fill, params in runs:
                alert = AlertContext(
                    playbook, stage, params, mode, "INC-0000", WORST_CASE_ISSUED_AT
                )
                try:
                    rendered = self.renderer.render(alert)
                except TemplateError as exc:
                    yield Problem(
                        self.d.show(self.d.templates.root / playbook.id / stage),
                        "",
                        f"rendering with {label} ({mode}) fails: {exc}",
                        "guard optional params with {% if name %}",
                        subject=f"playbook:{playbook.id}",
                    )
                    return
                if fill is not None:
                    filled[fill] = rendered.texts
            yield from self.lengths(
                playbook, mode, lambda v, lang: template_key(playbook.id, stage, v, lang), filled
            )

    def lengths(
        self,
        playbook: Playbook,
        mode: Mode,
        key_of: Callable[[str, str], str],
        filled: dict[Fill, dict[str, LanguageTexts]],
        beyond_file: str | None = None,
    ) -> Iterator[Problem]:
        """Titles, and every text against every channel type that carries it, each with
        the fill that weighs most in that type's count."""
        seen: set[tuple[str, str]] = set()
        for lang, t in filled[PLAIN].items():
            if "\n" in t.title:
                yield Problem(
                    self.tpl(key_of("title", lang)),
                    "",
                    "renders to more than one line",
                    "a title is one line",
                )
            if len(t.title) > TITLE_MAX_LENGTH:
                yield Problem(
                    self.tpl(key_of("title", lang)),
                    "",
                    f"worst case ({mode}) is {len(t.title)} characters, at most {TITLE_MAX_LENGTH}",
                    "shorten it or lower the params' max_length",
                )
        targets: list[tuple[str, str, Literal["short", "long"], str, int | None]] = [
            (
                f"channel {cid}",
                c.channel_type,
                c.variant,
                channel_language(playbook, c),
                c.length_limit,
            )
            for cid, c in fan_out_channels(playbook, self.d.channels).items()
        ]
        targets += [
            (f"any {t} channel", t, "short", lang, KINDS[t].length_limit)
            for t in PORTABLE_SHORT_TYPES
            for lang in playbook.languages
        ]
        for who, kind, variant, lang, limit in targets:
            key = key_of(variant, lang)
            if (key, kind) in seen:
                continue
            measured = [
                (
                    fill,
                    KINDS[kind].measure_message(
                        texts[lang].title, texts[lang].variant(variant), limit
                    ),
                )
                for fill, texts in filled.items()
                if fill.applies_to(kind)
            ]
            fill, m = max((x for x in measured if not x[0].beyond), key=_weight)
            if not m.fits:
                seen.add((key, kind))
                with_fill = "" if fill is PLAIN else f", filled with {fill.name}"
                yield Problem(
                    self.tpl(key),
                    "",
                    f"worst case ({mode}, every string param at its "
                    f"max_length{with_fill}) is {m} on {kind} ({who})",
                    "shorten the template or lower the params' max_length",
                )
                continue
            fill, m = max(measured, key=_weight)
            if not m.fits:
                seen.add((key, kind))
                file, where = (
                    (beyond_file, "reason and params")
                    if beyond_file
                    else (
                        self.d.show(
                            self.d.base_dir
                            / self.d.settings.paths.playbooks
                            / f"{playbook.id}.yaml"
                        ),
                        "params",
                    )
                )
                self.beyond.setdefault((file, where, kind), []).append((self.tpl(key), fill, m))

    def beyond_plain_text(self) -> Iterator[Problem]:
        """One warning per playbook (and one for the retraction templates) whose texts
        fit with German and English text in the params, but not with characters
        outside GSM-7: the worst text per channel type, with its fill."""
        by_file: dict[tuple[str, str], list[str]] = {}
        for (file, where, kind), found in self.beyond.items():
            template, fill, m = max(found, key=lambda x: _weight((x[1], x[2])))
            others = len({t for t, _, _ in found}) - 1
            more = f" and {others} more" if others else ""
            effect = KINDS[kind].over_limit
            by_file.setdefault((file, where), []).append(
                f"on {kind} up to {m} with {fill.name} ({template}{more}; {effect})"
            )
        for (file, where), lines in by_file.items():
            yield Problem(
                file,
                where,
                "with characters outside GSM-7 (such as Ł, Cyrillic, CJK or emoji) filling "
                f"the {where}, texts are too long: " + "; ".join(lines),
                "fine while params carry German or English text; else lower the params' "
                "max_length or shorten the templates",
                "warning",
            )

    # -- whatsapp: a Meta template for everything a channel sends ----------------------
    def whatsapp_templates(self) -> Iterator[Problem]:
        """WhatsApp sends only templates Meta approved: every stage a whatsapp channel
        carries, and its correction (or its notices to the duty officers), needs one."""
        notified = {cid for officer in self.d.settings.duty_officers for cid in officer.notify}
        for cid, channel in self.d.channels.items():
            if not isinstance(channel, WhatsappChannel) or not channel.enabled:
                continue
            file = self.d.show(self.d.base_dir / self.d.settings.paths.channels / f"{cid}.yaml")
            fix = "add it under templates with the name of a template Meta approved"
            if channel.audience == "internal":
                if cid in notified and "_confirmation_request" not in channel.templates:
                    yield Problem(
                        file,
                        "templates._confirmation_request",
                        "is missing: the duty officers' confirm link cannot go out here",
                        fix,
                    )
                continue
            carried = False
            for playbook in self.d.playbooks.values():
                if cid not in fan_out_channels(playbook, self.d.channels):
                    continue
                carried = True
                for stage in playbook.stages:
                    if channel.template_for(playbook.id, stage) is None:
                        yield Problem(
                            file,
                            f"templates.{stage}",
                            f"is missing: stage {stage!r} of playbook {playbook.id} would "
                            "reach no subscriber",
                            f"{fix} (or templates.{playbook.id}/{stage} for this playbook)",
                        )
            if carried and "_retraction" not in channel.templates:
                yield Problem(
                    file,
                    "templates._retraction",
                    "is missing: a retracted false alarm would get no correction here",
                    fix,
                )

    # -- retraction ---------------------------------------------------------------
    def retraction(self) -> Iterator[Problem]:
        languages = sorted({lang for p in self.d.playbooks.values() for lang in p.languages})
        every_param = {name for p in self.d.playbooks.values() for name in p.params}
        allowed = (RESERVED_NAMES - {"instruction"}) | every_param
        missing = False
        for lang in languages:
            for variant in RETRACTION_VARIANTS:
                key = retraction_key(variant, lang)
                if not self.d.templates.exists(key):
                    missing = True
                    yield Problem(
                        self.tpl(key),
                        "",
                        f"is missing (retraction {variant} in language {lang})",
                        "write the correction template",
                    )
                    continue
                try:
                    used = self.d.templates.load(key).variables()
                except TemplateSyntaxError as exc:
                    missing = True
                    yield Problem(
                        self.tpl(key), f"line {exc.lineno}", f"template syntax: {exc.message}"
                    )
                    continue
                for name in sorted(used - allowed):
                    missing = True
                    yield Problem(
                        self.tpl(key),
                        name,
                        f"unknown name {name!r}: retraction "
                        "templates see reason, scenario_name, incident, issued_at, "
                        "mode, page_url and the alert's params",
                        "guard params with `is defined`",
                    )
        if missing:
            return
        for playbook in self.d.playbooks.values():
            for mode in ("live", "drill"):
                alert = AlertContext(
                    playbook,
                    playbook.default_stage,
                    {},
                    mode,
                    "INC-0000",
                    WORST_CASE_ISSUED_AT,
                )
                filled: dict[Fill, dict[str, LanguageTexts]] = {}
                try:
                    for fill in FILLS:
                        # The officer's reason is filled like the params.
                        filled[fill] = self.renderer.render_retraction(
                            replace(alert, params=worst_case_params(playbook, fill)),
                            fill.char * REASON_MAX_LENGTH,
                        ).texts
                except TemplateError as exc:
                    yield Problem(
                        self.tpl(RETRACTION),
                        "",
                        f"rendering for {playbook.id} fails: {exc}",
                        "guard params with `is defined`",
                    )
                    return
                yield from self.lengths(
                    playbook, mode, retraction_key, filled, self.tpl(RETRACTION)
                )

    # -- approvals ----------------------------------------------------------------
    def used_templates(self) -> list[str]:
        keys = [
            key
            for p in self.d.playbooks.values()
            for stage in p.stages
            for lang in p.languages
            for v in VARIANTS
            if self.d.templates.exists(key := template_key(p.id, stage, v, lang))
        ]
        languages = sorted({lang for p in self.d.playbooks.values() for lang in p.languages})
        keys += [
            k
            for lang in languages
            for v in RETRACTION_VARIANTS
            if self.d.templates.exists(k := retraction_key(v, lang))
        ]
        return keys

    def approvals(self) -> Iterator[Problem]:
        approvals_file = self.d.show(self.d.approvals.path)
        for key in self.used_templates():
            why = self.d.approvals.refusal(self.d.templates.load(key))
            if why is not None:
                yield Problem(
                    self.tpl(key),
                    "",
                    f"{why}: a live alert cannot use it",
                    f"broadcaster approve {key} --by NAME, by two different people",
                )
        for key in sorted(self.d.approvals.entries):
            if not self.d.templates.exists(key):
                yield Problem(
                    approvals_file,
                    key,
                    "approves a template that does not exist",
                    "remove the entry",
                    "warning",
                )

    def stray_templates(self) -> Iterator[Problem]:
        used = set(self.used_templates())
        # A playbook whose file did not load has its error already: its templates are
        # not strays.
        folder = self.d.base_dir / self.d.settings.paths.playbooks
        unloaded = {p.stem for p in folder.glob("*.y*ml")} - set(self.d.playbooks)
        for key in self.d.templates.all_keys():
            if key.split("/", 1)[0] in unloaded:
                continue
            if key not in used and key not in self.broken:
                yield Problem(
                    self.tpl(key),
                    "",
                    "belongs to no playbook, stage or language "
                    "(a typo in the folder or file name?)",
                    "rename or remove it",
                    "warning",
                )


def validate(config: Path | None = None) -> list[Problem]:
    """Every problem of the deployment, errors first; empty when all is well."""
    deployment, problems = read_deployment(config)
    if deployment is not None:
        problems = problems + Validator(deployment).run()
    return sorted(problems, key=lambda p: (p.severity != "error", p.file, p.where))
