"""Templates: finding them, rendering them in a sandbox, and their four-eyes approvals.

Trigger params are data, never template code: they are passed to `render()` as values
and Jinja2 never parses a value, so `{{ 7*7 }}` inside a param comes out literally.
The sandbox stops template authors from reaching Python internals; StrictUndefined
turns a misspelt variable into an error instead of an empty gap in a public warning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from broadcaster.problems import Problem, display_path
from broadcaster.text_hygiene import person_key, person_name

Variant = Literal["title", "short", "long", "instruction"]
VARIANTS: tuple[Variant, ...] = ("title", "short", "long", "instruction")
REQUIRED_VARIANTS: tuple[Variant, ...] = ("title", "short", "long")
RETRACTION = "_retraction"
RETRACTION_VARIANTS: tuple[Variant, ...] = ("title", "short", "long")
APPROVALS_FILE = "approvals.yaml"
MIN_APPROVERS = 2
EMPTY_APPROVER = "the approver's name is empty after removing invisible characters and spaces"


def template_key(playbook: str, stage: str, variant: str, language: str) -> str:
    """The template's path relative to templates/, as approvals.yaml names it."""
    return f"{playbook}/{stage}/{variant}.{language}.j2"


def retraction_key(variant: str, language: str) -> str:
    return f"{RETRACTION}/{variant}.{language}.j2"


def _clock(value: datetime | time | str) -> str:
    if isinstance(value, str):
        return value
    return value.strftime("%H:%M")


def _date(value: datetime | date) -> str:
    return value.strftime("%d.%m.%Y")


def make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,  # plain text; each channel escapes for its own markup
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = _clock
    env.filters["date"] = _date
    return env


ENVIRONMENT = make_environment()


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    return ENVIRONMENT.from_string(text)


@dataclass(frozen=True)
class TemplateSource:
    """A template's exact bytes: the same bytes are hashed for approval and rendered."""

    key: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    def render(self, context: dict[str, Any]) -> str:
        return _compiled(self.text).render(context).strip()

    def variables(self) -> set[str]:
        """Names the template reads from its context (raises TemplateSyntaxError)."""
        ast = ENVIRONMENT.parse(self.text)
        return meta.find_undeclared_variables(ast) - _guarded_names(ast)


def _guarded_names(ast: nodes.Template) -> set[str]:
    """Names only used in `x is defined` tests, which retraction templates use for
    params some scenarios have and others do not."""
    return {
        test.node.name
        for test in ast.find_all(nodes.Test)
        if test.name == "defined" and isinstance(test.node, nodes.Name)
    }


class TemplateFolder:
    """templates/<playbook>/<stage>/<variant>.<lang>.j2 on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> TemplateSource:
        return TemplateSource(key, self.path(key).read_bytes())

    def all_keys(self) -> list[str]:
        """Every template file, as approval keys."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.j2"))

    def key_of(self, given: str) -> str:
        """A key from what a person typed: the key itself or a path to the file."""
        path = Path(given)
        if path.is_file():
            try:
                return path.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                raise ValueError(f"{given} is not inside {self.root}") from None
        if self.exists(given):
            return given
        raise ValueError(f"no template {given} (looked in {self.root})")


@dataclass(frozen=True)
class Approval:
    sha256: str
    approved_by: tuple[str, ...]
    approved_at: str
    # The approved bytes as text, kept so a change can be shown as a diff. None: not
    # recorded (approvals.yaml from before this was kept); only trusted when it hashes to
    # sha256 (`approved_text`).
    text: str | None = None
    # While a changed template waits for its second approval: the version two people
    # approved last, so the console can still show it and diff against it.
    previous: Approval | None = None

    @property
    def approved_text(self) -> str | None:
        """The kept text when it is exactly the approved bytes, else None."""
        if self.text is None or not self.text_matches:
            return None
        return self.text

    @property
    def text_matches(self) -> bool:
        return self.text is None or _sha256_of(self.text) == self.sha256

    @property
    def four_eyes(self) -> bool:
        """Whether enough different people approved (the rule of Approvals.refusal)."""
        return len(distinct_names(self.approved_by)) >= MIN_APPROVERS

    @property
    def last_full(self) -> Approval | None:
        """The version two people approved last: this one, or the one it is replacing."""
        return self if self.four_eyes else self.previous


def _sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1024)  # asked for each template of each trigger
def distinct_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """One display name per person (text_hygiene.person_key decides who is the same)."""
    out: dict[str, str] = {}
    for name in names:
        key = person_key(name)
        if key and key not in out:
            out[key] = person_name(name)
    return tuple(out.values())


class Approvals:
    """templates/approvals.yaml: which template bytes two different people approved."""

    def __init__(self, path: Path, entries: dict[str, Approval]) -> None:
        self.path = path
        self.entries = entries

    @classmethod
    def load(cls, path: Path) -> tuple[Approvals, list[Problem]]:
        shown = display_path(path)
        if not path.exists():
            return cls(path, {}), []
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            return cls(path, {}), [
                Problem(shown, "", f"cannot be read: {exc}", subject="approvals")
            ]
        if not isinstance(data, dict):
            return cls(path, {}), [
                Problem(shown, "", "must map template paths to approvals", subject="approvals")
            ]
        entries: dict[str, Approval] = {}
        problems: list[Problem] = []
        for key, value in data.items():
            entry = _entry(value, shown, str(key), problems)
            if entry is None:
                continue
            if entry.previous is not None and entry.previous.previous is not None:
                problems.append(Problem(shown, str(key), "previous may not have a previous"))
                continue
            entries[str(key)] = entry
            for approval, where in ((entry, str(key)), (entry.previous, f"{key}: previous")):
                if approval is not None and not approval.text_matches:
                    # Not an approval problem (the sha256 and names decide, as before):
                    # the kept text is not shown, and the next approval writes it anew.
                    problems.append(
                        Problem(
                            shown,
                            where,
                            "the kept text is not the approved bytes (its sha256 differs)",
                            "approve the template again, or restore the file from version control",
                            "warning",
                        )
                    )
        return cls(path, entries), problems

    def refusal(self, source: TemplateSource) -> str | None:
        """Why these bytes may not go out live, or None when they are approved."""
        entry = self.entries.get(source.key)
        if entry is None:
            return "has no approval"
        if entry.sha256 != source.sha256:
            return "was changed after its approval (sha256 differs)"
        names = distinct_names(entry.approved_by)
        if len(names) < MIN_APPROVERS:
            who = ", ".join(names) or "nobody"
            return f"is approved by {who} only; four eyes need {MIN_APPROVERS} different names"
        return None

    def approved_by(self, source: TemplateSource, by: str) -> bool:
        """Whether `by` (the same person, however typed) approved these very bytes."""
        entry = self.entries.get(source.key)
        if entry is None or entry.sha256 != source.sha256:
            return False
        return any(person_key(by) == person_key(n) for n in entry.approved_by)

    def approve(self, source: TemplateSource, by: str, today: date) -> Approval:
        """Record one approval of the template's current bytes; a change starts afresh."""
        name = person_name(by)
        if not name:
            raise ValueError(EMPTY_APPROVER)
        entry = self.entries.get(source.key)
        text = _kept_text(source)
        if entry is not None and entry.sha256 == source.sha256:
            if any(person_key(name) == person_key(n) for n in entry.approved_by):
                # Nobody new: names and date stay; a text not recorded yet is recorded.
                approval = replace(entry, text=text)
            else:
                approval = replace(entry, approved_by=(*entry.approved_by, name), text=text)
                approval = replace(approval, approved_at=today.isoformat())
            if approval.four_eyes:
                approval = replace(approval, previous=None)  # this one is the last full
        else:
            # A change starts afresh; the version two people approved last is kept
            # until this one has its second approval.
            last = entry.last_full if entry is not None else None
            previous = replace(last, previous=None) if last is not None else None
            approval = Approval(source.sha256, (name,), today.isoformat(), text, previous)
        self.entries[source.key] = approval
        return approval

    def save(self) -> None:
        data = {key: _written(a) for key, a in sorted(self.entries.items())}
        header = (
            "# Four-eyes approvals of the templates' exact bytes (contract section 4), with\n"
            "# the approved text. Written by `broadcaster approve TEMPLATE --by NAME` and the\n"
            "# console; do not edit by hand.\n"
        )
        text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=88)
        tmp = self.path.with_suffix(".yaml.tmp")
        tmp.write_text(header + text, encoding="utf-8")
        tmp.replace(self.path)


def _entry(value: object, shown: str, where: str, problems: list[Problem]) -> Approval | None:
    """One approval as approvals.yaml holds it (text and previous are optional)."""
    names = value.get("approved_by") if isinstance(value, dict) else None
    sha = value.get("sha256") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(sha, str) or not isinstance(names, list):
        problems.append(Problem(shown, where, "needs sha256 and approved_by (a list)"))
        return None
    text = value.get("text")
    if text is not None and not isinstance(text, str):
        problems.append(Problem(shown, where, "text must be a string"))
        return None
    previous = None
    if value.get("previous") is not None:
        previous = _entry(value["previous"], shown, f"{where}: previous", problems)
        if previous is None:
            return None
    return Approval(
        sha256=sha,
        approved_by=tuple(str(n) for n in names),
        approved_at=str(value.get("approved_at", "")),
        text=text,
        previous=previous,
    )


def _kept_text(source: TemplateSource) -> str | None:
    """The text to keep for these bytes: None when they are not UTF-8 (never rendered)."""
    try:
        return source.text
    except UnicodeDecodeError:
        return None


class _Text(str):
    """A kept template text: a literal block when YAML gives back exactly these bytes."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, value: _Text) -> yaml.Node:
    plain = str(value)
    style = "|" if _literal_exact(plain) else '"'  # a double-quoted string is always exact
    return dumper.represent_scalar("tag:yaml.org,2002:str", plain, style=style)


_Dumper.add_representer(_Text, _represent_text)


@lru_cache(maxsize=1024)
def _literal_exact(text: str) -> bool:
    # YAML folds some line breaks (\r, \x85) inside a block; the emitter falls back to
    # quotes for what a block cannot hold, so loading it back is the test.
    if not text or any(ch in text for ch in "\r\x85\u2028\u2029"):
        return False
    dumped = yaml.dump({"t": _Text(text)}, Dumper=_LiteralDumper, allow_unicode=True)
    loaded = yaml.safe_load(dumped)
    return isinstance(loaded, dict) and loaded.get("t") == text


class _LiteralDumper(yaml.SafeDumper):
    pass


_LiteralDumper.add_representer(
    _Text, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style="|")
)


def _written(a: Approval) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sha256": a.sha256,
        "approved_by": list(a.approved_by),
        "approved_at": a.approved_at,
    }
    if a.text is not None:
        out["text"] = _Text(a.text)
    if a.previous is not None:
        out["previous"] = _written(a.previous)
    return out


class ApprovalsBroken(Exception):
    """approvals.yaml cannot be read: fix it before anyone approves."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class AlreadyApproved(Exception):
    """This person already approved these very bytes: four eyes need someone else."""

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        super().__init__(f"{key}: {name} already approved this version")


class ChangedMeanwhile(Exception):
    """The template's bytes are not the ones the approver looked at."""

    def __init__(self, key: str, sha256: str) -> None:
        self.key = key
        self.sha256 = sha256
        super().__init__(f"{key} was changed since it was shown (sha256 now {sha256[:12]}…)")


@dataclass(frozen=True)
class Recorded:
    key: str
    approval: Approval
    refusal: str | None  # why it may not go out live yet; None: approved


def record_approvals(
    folder: TemplateFolder,
    given: list[str],
    by: str,
    today: date,
    *,
    seen: str | None = None,
    first_only: bool = False,
) -> list[Recorded]:
    """Approve each template's current bytes under `by`, in approvals.yaml, and save it
    (`broadcaster approve` and the console). `seen`: the sha256 the approver looked at,
    else ChangedMeanwhile; `first_only`: AlreadyApproved when `by` approved these bytes
    before (the console's four eyes). ApprovalsBroken, ValueError for an unknown key."""
    approvals, problems = Approvals.load(folder.root / APPROVALS_FILE)
    errors = [p for p in problems if p.severity == "error"]  # a wrong kept text is healed
    if errors:
        raise ApprovalsBroken(errors)
    keys = [folder.key_of(t) for t in given]
    recorded = []
    for key in keys:
        source = folder.load(key)
        if seen is not None and source.sha256 != seen:
            raise ChangedMeanwhile(key, source.sha256)
        if first_only and approvals.approved_by(source, by):
            raise AlreadyApproved(key, person_name(by))
        approval = approvals.approve(source, by, today)
        recorded.append(Recorded(key, approval, approvals.refusal(source)))
    approvals.save()
    return recorded


__all__ = [
    "ENVIRONMENT",
    "AlreadyApproved",
    "Approvals",
    "ApprovalsBroken",
    "ChangedMeanwhile",
    "Recorded",
    "TemplateFolder",
    "TemplateSource",
    "TemplateSyntaxError",
    "record_approvals",
    "retraction_key",
    "template_key",
]
