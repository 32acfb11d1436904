"""JSON Schemas of the files a deployment is written in: `broadcaster.yaml`, a playbook and a
channel file (`broadcaster schema`), so that an editor completes and checks them.

They come from the pydantic models, adjusted to describe the files *as written*, before
`${NAME}` is filled in from the environment (contract section 1):

- a duration is text such as `30s`, `5m`, `1h30m` or `250ms` (pydantic would say ISO 8601);
- a rate limit is text such as `30/min` or `100/15min`;
- every value that is not free text (a number, a switch, a choice, text with a pattern or
  a minimum length) may also be a string holding a `${NAME}` reference. Free text already
  allows one. The `type` of a channel or a param is the exception: an editor needs it
  written out to know which keys belong to the file.

What the models check across keys (a string param needs `max_length`, a playbook's id
equals its file name) is left to `broadcaster validate`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from broadcaster.channels.settings import _RATE, ChannelConfig
from broadcaster.config import Settings
from broadcaster.durations import format_duration
from broadcaster.playbooks import Playbook

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# parse_duration: one or more <digits><unit>, nothing between them.
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
# yamlfiles._interpolate: `${` a name `}`, anywhere in the text.
VARIABLE_PATTERN = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"
ENV_VAR = "EnvironmentVariable"
# The file each schema is written to by `broadcaster schema --out DIR`, in this order.
FILES = {
    "broadcaster": "broadcaster.schema.json",
    "playbook": "playbook.schema.json",
    "channel": "channel.schema.json",
}
_TITLES = {
    "broadcaster": ("broadcaster.yaml", "The daemon's settings (docs/configuration.md)."),
    "playbook": ("playbooks/<id>.yaml", "One scenario, its params and stages (docs/playbooks.md)."),
    "channel": ("channels/<channel_id>.yaml", "One account or endpoint (docs/channels.md)."),
}
_SCALARS = {"string", "integer", "number", "boolean"}
_CONSTRAINTS = {"pattern", "minLength", "maxLength", "enum", "const"}
_ANNOTATIONS = ("title", "description", "default", "examples")
_NOT_INTERPOLATED = {"type"}  # property names an editor must see written out


class _AsWritten(GenerateJsonSchema):
    """Durations as the files write them, with defaults in the same form."""

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "a duration: 250ms, 30s, 5m, 1h, 7d, or combined as 1h30m",
        }

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def _rate_limit_schema(model: JsonSchemaValue) -> JsonSchemaValue:
    return {
        "description": "at most this many requests per period: 30/min, 1/s, 100/15min",
        "anyOf": [{"type": "string", "pattern": _RATE.pattern}, model],
    }


def _needs_variable(node: Any) -> bool:
    """A scalar that a bare `${NAME}` string would not satisfy as it stands."""
    if not isinstance(node, dict) or node.get("type") not in _SCALARS:
        return False
    if node["type"] != "string":
        return True
    return any(key in node for key in _CONSTRAINTS)


def _with_variables(node: Any, name: str | None = None) -> Any:
    """`node` with `${NAME}` allowed wherever the file's value is a scalar."""
    if isinstance(node, list):
        return [_with_variables(item) for item in node]
    if not isinstance(node, dict):
        return node
    if name not in _NOT_INTERPOLATED and _needs_variable(node):
        outer = {key: node[key] for key in _ANNOTATIONS if key in node}
        inner = {key: value for key, value in node.items() if key not in _ANNOTATIONS}
        return {**outer, "anyOf": [inner, {"$ref": f"#/$defs/{ENV_VAR}"}]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs"):
            out[key] = {
                prop: _with_variables(inner, prop if key == "properties" else None)
                for prop, inner in value.items()
            }
        elif key == "anyOf" and name not in _NOT_INTERPOLATED:
            out[key] = _any_of(value)
        else:
            out[key] = _with_variables(value)
    return out


def _any_of(members: list[Any]) -> list[Any]:
    """`str | None` and the like: the variable once beside the members, not nested."""
    out = [member if _needs_variable(member) else _with_variables(member) for member in members]
    if any(_needs_variable(member) for member in members):
        out.append({"$ref": f"#/$defs/{ENV_VAR}"})
    return out


def _finish(name: str, schema: JsonSchemaValue) -> JsonSchemaValue:
    defs = dict(schema.pop("$defs", {}))
    if "RateLimit" in defs:
        defs["RateLimit"] = _rate_limit_schema(defs["RateLimit"])
    title, description = _TITLES[name]
    body = _with_variables({**schema, "$defs": defs})
    body["$defs"][ENV_VAR] = {
        "type": "string",
        "pattern": VARIABLE_PATTERN,
        "description": "${NAME}: read from the environment variable NAME when the file is "
        "loaded (an unset variable is an error)",
    }
    body["$defs"] = dict(sorted(body["$defs"].items()))
    return {"$schema": DIALECT, **body, "title": title, "description": description}


def _generate(adapter: Callable[..., JsonSchemaValue]) -> JsonSchemaValue:
    return adapter(schema_generator=_AsWritten, mode="validation")


def schemas() -> dict[str, JsonSchemaValue]:
    """The three schemas, keyed by name (broadcaster, playbook, channel)."""
    channel = TypeAdapter(Annotated[ChannelConfig, Field(discriminator="type")])
    raw = {
        "broadcaster": _generate(Settings.model_json_schema),
        "playbook": _generate(Playbook.model_json_schema),
        "channel": _generate(channel.json_schema),
    }
    return {name: _finish(name, schema) for name, schema in raw.items()}


def dumps(schema: Any) -> str:
    """Stable text: the same models give the same bytes (docs/schemas/ is checked in)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(folder: Path) -> list[Path]:
    """The three schema files in `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / FILES[name]
        path.write_text(dumps(schema), encoding="utf-8")
        written.append(path)
    return written
