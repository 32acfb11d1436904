"""Reading the YAML files of a deployment, with `${NAME}` taken from the environment.

An unset variable is an error naming the file and the key, never an empty string
(contract section 1): a secret that silently became "" would fail much later, at 3 a.m.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from broadcaster.problems import Problem, display_path

_VAR = "${"


def key_path(parts: tuple[Any, ...] | list[Any]) -> str:
    """`("duty_officers", 0, "pin")` -> `duty_officers[0].pin`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _interpolate(
    value: Any, env: Mapping[str, str], where: tuple[Any, ...], missing: list[tuple[str, str]]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*where, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*where, i), missing) for i, v in enumerate(value)]
    if not isinstance(value, str) or _VAR not in value:
        return value
    out: list[str] = []
    rest = value
    while _VAR in rest:
        before, _, after = rest.partition(_VAR)
        name, closed, rest = after.partition("}")
        out.append(before)
        if not closed or not name.isidentifier():
            missing.append((key_path(where), f"malformed variable reference in {value!r}"))
            return value
        if name not in env:
            missing.append((key_path(where), f"environment variable {name} is not set"))
            out.append(_VAR + name + "}")  # kept visible, never an empty string
            continue
        out.append(env[name])
    out.append(rest)
    return "".join(out)


def load_yaml(
    path: Path, *, env: Mapping[str, str] | None = None, base: Path | None = None
) -> tuple[Any, list[Problem]]:
    """Parse one YAML file and fill in `${NAME}`; problems name the file and the key."""
    shown = display_path(path, base)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [Problem(shown, "", f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [Problem(shown, "", "is not UTF-8 text", "save the file as UTF-8")]
    except yaml.YAMLError as exc:
        return None, [yaml_problem(shown, exc)]
    missing: list[tuple[str, str]] = []
    data = _interpolate(data, os.environ if env is None else env, (), missing)
    problems = [
        Problem(shown, key, what, "export it before starting, or leave the optional key out")
        for key, what in missing
    ]
    return data, problems


def yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    """The YAML error at the line a person must fix. A key without its colon
    (`languages [de]`) is noticed only on the next line: PyYAML's context mark has the
    line of the key itself."""
    problem = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    context_text = getattr(exc, "context", None)
    simple_key = context is not None and context_text == "while scanning a simple key"
    mark = context if simple_key else problem
    reason = getattr(exc, "problem", None) or str(exc)
    what = f"invalid YAML: {reason}"
    if context is not None and context_text and mark is not None and context.line != mark.line:
        what += f" ({context_text.removeprefix('while ')} that starts at line {context.line + 1})"
    where = f"line {mark.line + 1}" if mark is not None else ""
    fix = "write it as `key: value`" if simple_key else "fix the YAML at that line"
    return Problem(file, where, what, fix)


def validation_problems(
    file: str, exc: ValidationError, prefix: tuple[Any, ...] = ()
) -> list[Problem]:
    """Turn pydantic's errors into one Problem per wrong key."""
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif err["type"] == "missing":
            message = "required key is missing"
        problems.append(Problem(file, key_path((*prefix, *loc)), message))
    return problems
