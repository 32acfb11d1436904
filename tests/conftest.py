"""Fixtures shared by every kind of test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def deployment_copy(tmp_path: Path) -> Path:
    """A private copy of the repository's sample deployment, safe to break; returns its config."""
    for folder in ("playbooks", "templates", "channels"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "broadcaster.yaml", tmp_path / "broadcaster.yaml")
    return tmp_path / "broadcaster.yaml"
