"""A playbook's params as form fields: labels in the reader's language, and the type and
limits as HTML attributes, so the browser checks them as they are typed. The server
checks them again with the playbook's own `check_value`, as for any trigger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broadcaster.playbooks import ParamError, ParamSpec, Playbook, check_value, validate_params

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
