"""Where the browser tests keep the screenshots and cards they make.

With `UPDATE_DOCS_IMAGES=1` they replace those in the docs (`docs/images`,
`docs/console`); otherwise they go to a temporary folder, so a test run leaves the
repository as it was (the cards and pages carry the time of the run)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.servers import REPO

_RUN = Path(tempfile.mkdtemp(prefix="broadcaster-images-"))


def images(folder: str) -> Path:
    """The folder for the docs' `folder` (`images`, `console`), made if missing."""
    where = REPO / "docs" / folder if os.environ.get("UPDATE_DOCS_IMAGES") == "1" else _RUN / folder
    where.mkdir(parents=True, exist_ok=True)
    return where


IMAGES = images("images")
