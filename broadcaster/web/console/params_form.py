"""A playbook's params as form fields: labels in the reader's language, and the type and
limits as HTML attributes, so the browser checks them as they are typed. The server
checks them again with the playbook's own `check_value`, as for any trigger."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broadcaster.playbooks import ParamError, ParamSpec, Playbook, check_value, validate_params
from broadcaster.report import PAGES

_INPUT_TYPES = {
    "string": "text",
    "integer": "number",
    "number": "number",
    "time": "time",
    # Text, not datetime-local: the value needs its UTC offset, which that input drops.
    "datetime": "text",
}


@dataclass(frozen=True)
class ParamField:
    name: str
    label: str
    kind: str  # the param's type: string, integer, number, boolean, time, datetime
    input_type: str  # the <input type>; booleans are a <select>
    required: bool
    value: str
    attrs: dict[str, str] = field(default_factory=dict)  # maxlength, min, max, step
    problem: str = ""


def _attrs(spec: ParamSpec) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if spec.max_length is not None:
        attrs["maxlength"] = str(spec.max_length)
    if spec.type in ("integer", "number"):
        attrs["step"] = "1" if spec.type == "integer" else "any"
        attrs["inputmode"] = "numeric" if spec.type == "integer" else "decimal"
        for bound in ("min", "max"):
            limit = getattr(spec, bound)
            if limit is not None:
                attrs[bound] = f"{limit:g}"
    if spec.type == "datetime":
        attrs["placeholder"] = "2026-11-23T14:30+01:00"
    return attrs


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def param_fields(
    playbook: Playbook,
    lang: str,
    values: Mapping[str, str],
    problems: Mapping[str, str] | None = None,
) -> list[ParamField]:
    """One field per param, in the playbook's order, filled with `values` (or defaults)."""
    problems = problems or {}
    return [
        ParamField(
            name=name,
            label=playbook.param_label(name, lang),
            kind=spec.type,
            input_type=_INPUT_TYPES.get(spec.type, "select"),
            required=spec.required,
            value=values.get(name, _shown(spec.default)),
            attrs=_attrs(spec),
            problem=problems.get(name, ""),
        )
        for name, spec in playbook.params.items()
    ]


def given_params(playbook: Playbook, form: Mapping[str, Any]) -> dict[str, str]:
    """The params a form filled in, as text (every type takes text, as from
    `--param k=v`); an empty field is not given, so its default applies."""
    given = {}
    for name in playbook.params:
        value = form.get(f"param.{name}")
        if isinstance(value, str) and value.strip():
            given[name] = value.strip()
    return given


def param_problems(playbook: Playbook, given: Mapping[str, str]) -> dict[str, str]:
    """What is wrong with each param, by name; empty when the playbook takes them all."""
    problems = {}
    for name, spec in playbook.params.items():
        if name not in given:
            if spec.required:
                problems[name] = "is required"
            continue
        try:
            check_value(spec, given[name])
        except ValueError as exc:
            problems[name] = str(exc)
    if not problems:
        try:
            validate_params(playbook, dict(given))
        except ParamError as exc:  # whatever the field checks above did not name
            problems[""] = "; ".join(exc.messages)
    return problems


# The param checks' words (playbooks.check_value, text_hygiene) in German: the checks
# speak English, as their refusals do to the dispatch system; the console's reader may not.
GERMAN = [
    (re.compile(r"^is required$"), "ist Pflicht"),
    (re.compile(r"^has no value$"), "hat keinen Wert"),
    (
        re.compile(r"^is (\d+) characters long, at most (\d+)$"),
        r"ist \1 Zeichen lang, höchstens \2",
    ),
    (re.compile(r"^is (\S+), at least (\S+)$"), r"ist \1, mindestens \2"),
    (re.compile(r"^is (\S+), at most (\S+)$"), r"ist \1, höchstens \2"),
    (re.compile(r"^must be a time HH:MM, got (.*)$"), r"muss eine Uhrzeit HH:MM sein, nicht \1"),
    (re.compile(r"^must be a whole number, got (.*)$"), r"muss eine ganze Zahl sein, nicht \1"),
    (re.compile(r"^must be a number, got (.*)$"), r"muss eine Zahl sein, nicht \1"),
    (
        re.compile(r"^contains (.*) at position (\d+), remove it .*$"),
        r"enthält \1 an Stelle \2: bitte entfernen (unsichtbare und Steuerzeichen sind in"
        r" öffentlichen Texten nicht erlaubt)",
    ),
]


def problem_words(problem: str, lang: str) -> str:
    """A param check's problem in the reader's language (English as it is)."""
    if lang == "de":
        for pattern, german in GERMAN:
            if pattern.match(problem):
                return pattern.sub(german, problem)
    return problem


PAGES.filters["problem_words"] = problem_words
