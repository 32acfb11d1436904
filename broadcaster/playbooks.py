"""Playbooks: one scenario each, its params, stages and confirmation policy (contract section 3)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broadcaster.durations import Duration
from broadcaster.problems import Problem, display_path
from broadcaster.text_hygiene import public_text_problem
from broadcaster.yamlfiles import load_yaml, validation_problems

ParamType = Literal["string", "integer", "number", "boolean", "time", "datetime"]
MsgType = Literal["Alert", "Update", "Cancel"]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
Category = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]
ResponseType = Literal[
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"
]

# Names the engine puts into every template; a param must not hide one of them.
RESERVED_NAMES = frozenset(
    {
        "scenario",
        "scenario_name",
        "stage",
        "mode",
        "incident",
        "issued_at",
        "instruction",
        "reason",
        "page_url",  # the public warning page (broadcaster/warnings.py)
    }
)
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# An ad-hoc update's stage (adhoc.py): a free text of the console, no playbook stage.
ADHOC_STAGE = "_update"
ADHOC_LABEL = {"de": "Ad-hoc-Meldung", "en": "Ad-hoc update"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Model):
    type: ParamType
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    description: str = ""
    label: dict[str, str] | None = None  # per language, for people (the confirm page)

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.max_length is not None and self.type != "string":
            raise ValueError("max_length applies to string params only")
        if (self.min is not None or self.max is not None) and self.type not in (
            "integer",
            "number",
        ):
            raise ValueError("min/max apply to integer and number params only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        if self.type == "string" and self.max_length is None:
            raise ValueError(
                "a string param needs max_length, so every channel's limit can be checked"
            )
        if self.required and self.default is not None:
            raise ValueError("a required param cannot have a default")
        if self.default is not None:
            check_value(self, self.default)
        return self


class CapProfile(_Model):
    category: Category
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    event: dict[str, str] = Field(default_factory=dict)
    response_type: ResponseType | None = None


class Stage(_Model):
    msg_type: MsgType = "Alert"
    urgency: Urgency | None = None
    severity: Severity | None = None
    certainty: Certainty | None = None
    response_type: ResponseType | None = None
    label: dict[str, str] | None = None  # per language, for people (the confirm page)


class Confirmation(_Model):
    mode: Literal["required", "auto", "none"] = "required"
    timeout: Duration = timedelta(minutes=10)
    on_timeout: Literal["abort", "send"] = "abort"


class Playbook(_Model):
    id: str
    name: dict[str, str]
    languages: list[str] = Field(min_length=1)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    cap: CapProfile
    confirmation: Confirmation = Field(default_factory=Confirmation)
    stages: dict[str, Stage] = Field(min_length=1)
    channels: Literal["all"] | list[str] = "all"

    @model_validator(mode="after")
    def _names(self) -> Playbook:
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages lists a language twice")
        for lang in self.languages:
            if lang not in self.name:
                raise ValueError(f"name has no text for language {lang!r}")
        for param in self.params:
            if not _IDENTIFIER.match(param):
                raise ValueError(f"param {param!r}: use lower-case letters, digits and _")
            if param in RESERVED_NAMES:
                raise ValueError(f"param {param!r} hides the template variable of the same name")
        for stage in self.stages:
            if not _IDENTIFIER.match(stage):
                raise ValueError(f"stage {stage!r}: use lower-case letters, digits and _")
        labelled = [(f"params.{n}", p.label) for n, p in self.params.items()]
        labelled += [(f"stages.{n}", st.label) for n, st in self.stages.items()]
        for where, label in labelled:
            for lang, text in (label or {}).items():
                if lang not in self.languages:
                    raise ValueError(
                        f"{where}.label: language {lang!r} is not one of the playbook's "
                        f"languages ({', '.join(self.languages)})"
                    )
                if not text.strip():
                    raise ValueError(f"{where}.label.{lang} is empty")
        return self

    @property
    def primary_language(self) -> str:
        return self.languages[0]

    @property
    def default_stage(self) -> str:
        return next(iter(self.stages))

    @property
    def all_clear_stage(self) -> str | None:
        """The stage that ends the incident: the one whose response is AllClear."""
        return next((n for n, s in self.stages.items() if s.response_type == "AllClear"), None)

    def param_label(self, name: str, language: str) -> str:
        spec = self.params.get(name)
        return self._label(spec.label if spec else None, name, language)

    def stage_label(self, stage: str, language: str) -> str:
        spec = self.stages.get(stage)
        if spec is None and stage == ADHOC_STAGE:
            return ADHOC_LABEL.get(language) or ADHOC_LABEL["en"]
        return self._label(spec.label if spec else None, stage, language)

    def _label(self, label: dict[str, str] | None, name: str, language: str) -> str:
        """In `language`, else in the primary language, else the id itself."""
        label = label or {}
        return label.get(language) or label.get(self.primary_language) or name


class ParamError(ValueError):
    """Params that do not fit the playbook; one message per wrong param."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))


def check_value(spec: ParamSpec, value: Any) -> Any:
    """One param value checked and converted; ValueError says what is wrong.

    Strings are accepted for every type, because `--param k=v` and some dispatch
    systems send everything as text.
    """
    if value is None:
        raise ValueError("has no value")
    match spec.type:
        case "string":
            if not isinstance(value, str):
                raise ValueError(f"must be text, got {type(value).__name__}")
            problem = public_text_problem(value)
            if problem:
                raise ValueError(problem)
            if spec.max_length is not None and len(value) > spec.max_length:
                raise ValueError(f"is {len(value)} characters long, at most {spec.max_length}")
            return value
        case "integer":
            number: int | float = _integer(value)
        case "number":
            number = _number(value)
        case "boolean":
            return _boolean(value)
        case "time":
            if not isinstance(value, str) or not _TIME.match(value):
                raise ValueError(f"must be a time HH:MM, got {value!r}")
            return value
        case "datetime":
            return _datetime(value)
    if spec.min is not None and number < spec.min:
        raise ValueError(f"is {number}, at least {_plain(spec.min)}")
    if spec.max is not None and number > spec.max:
        raise ValueError(f"is {number}, at most {_plain(spec.max)}")
    return number


def _plain(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, got true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,15}", value.strip()):
        return int(value)
    raise ValueError(f"must be a whole number, got {value!r}")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number, got true/false")
    if isinstance(value, (int, float)) or (
        isinstance(value, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value.strip())
    ):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a double's range
            raise ValueError("is too large a number") from None
    else:
        raise ValueError(f"must be a number, got {value!r}")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError(f"must be true or false, got {value!r}")


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 date and time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 date and time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-11-23T14:30:00+01:00")
    return parsed


def validate_params(playbook: Playbook, given: dict[str, Any]) -> dict[str, Any]:
    """The trigger's params checked against the playbook, defaults filled in.

    An optional param without a default is None, so templates can test it.
    Raises ParamError with one message per wrong param.
    """
    messages = [
        f"unknown param {name!r} (this playbook takes: {', '.join(playbook.params) or 'none'})"
        for name in given
        if name not in playbook.params
    ]
    values: dict[str, Any] = {}
    for name, spec in playbook.params.items():
        raw = given.get(name)
        if raw is None:
            if spec.required:
                messages.append(f"param {name!r} is required")
            values[name] = spec.default
            continue
        try:
            values[name] = check_value(spec, raw)
        except ValueError as exc:
            messages.append(f"param {name!r} {exc}")
    if messages:
        raise ParamError(messages)
    return values


def _load_playbook(path: Path, base: Path | None) -> tuple[Playbook | None, list[Problem]]:
    shown = display_path(path, base)
    data, problems = load_yaml(path, base=base)
    if not isinstance(data, dict):
        if data is not None or not problems:
            problems.append(Problem(shown, "", "must be a mapping with id, name, stages, ..."))
        return None, problems
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        return None, problems + validation_problems(shown, exc)
    if playbook.id != path.stem:
        problems.append(
            Problem(
                shown,
                "id",
                f"is {playbook.id!r} but the file is {path.name}",
                "the id must equal the file name",
            )
        )
        return None, problems
    if any(p.severity == "error" for p in problems):
        return None, problems  # an unset ${VAR}: not usable as it is
    return playbook, problems


def load_playbooks(
    folder: Path, base: Path | None = None
) -> tuple[dict[str, Playbook], list[Problem]]:
    """Every playbooks/<id>.yaml; a broken file is reported and left out, the others load."""
    playbooks: dict[str, Playbook] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return {}, [Problem(display_path(folder, base), "", "playbook folder not found")]
    for path in sorted(folder.glob("*.y*ml")):
        playbook, found = _load_playbook(path, base)
        problems += [replace(p, subject=f"playbook:{path.stem}") for p in found]
        if playbook is not None:
            playbooks[playbook.id] = playbook
    if not playbooks and not problems:
        problems.append(Problem(display_path(folder, base), "", "no playbooks found"))
    return playbooks, problems
