#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs before the broadcaster runs or is tested:
# uv (the Python package manager), then the locked dependencies in .venv.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --locked --quiet
