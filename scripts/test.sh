#!/usr/bin/env bash
# Set up and run the whole test suite (what CI runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh --test
export PATH="$HOME/.local/bin:$PATH"  # where bootstrap.sh may have put uv
uv run pytest "$@"
