"""Where the browser tests keep the screenshots and cards they make.

With `UPDATE_DOCS_IMAGES=1` they replace those in docs/images (what the docs show);
otherwise they go to a temporary folder, so a test run leaves the repository as it was
(the cards carry the time of the run)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.servers import REPO

IMAGES = (
    REPO / "docs" / "images"
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1"
    else Path(tempfile.mkdtemp(prefix="broadcaster-images-"))
)
