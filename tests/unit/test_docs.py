"""README.md and docs/ stand alone: every link points to a file of the repository (or a
web page), none leaves it, and the YAML examples that name a schema fit it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from broadcaster.schemas import FILES
from tests.servers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")
YAML_BLOCK = re.compile(r"```yaml\n(# yaml-language-server: \$schema=(\S+)\n.*?)```", re.DOTALL)


def test_the_reference_pages_exist_and_the_readme_links_each():
    names = {p.relative_to(REPO).as_posix() for p in PAGES}
    wanted = {"configuration", "playbooks", "channels", "mqtt", "signing"}
    assert {f"docs/{name}.md" for name in wanted} <= names
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in wanted:
        assert f"](docs/{name}.md)" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_points_into_the_repository_or_the_web(page: Path):
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "CONTRACT.md" not in text
    broken = []
    for match in LINK.finditer(text):
        target = (match[1] or match[2]).split("#", 1)[0]
        if not target or target.startswith(("https://", "http://", "mailto:")):
            continue
        if not (page.parent / target).exists():
            broken.append(target)
    assert broken == []


def _examples() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        shown = page.relative_to(REPO).as_posix()
        for block, schema in YAML_BLOCK.findall(page.read_text(encoding="utf-8")):
            found.append((shown, schema, block))
    return found


EXAMPLES = _examples()


def test_there_are_examples_to_check():
    assert {page for page, _, _ in EXAMPLES} >= {"docs/configuration.md", "docs/channels.md"}


@pytest.mark.parametrize(("page", "schema", "block"), EXAMPLES, ids=lambda v: str(v)[:40])
def test_a_yaml_example_that_names_a_schema_fits_it(page, schema, block):
    # The path is as seen from a deployment file (broadcaster.yaml or a folder below it).
    name = Path(schema).name
    assert name in FILES.values()
    data = yaml.safe_load(block)
    validator = jsonschema.Draft202012Validator(
        json.loads((REPO / "docs" / "schemas" / name).read_text(encoding="utf-8"))
    )
    errors = [e.message for e in validator.iter_errors(data)]
    assert errors == []
