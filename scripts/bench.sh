#!/usr/bin/env bash
# Benchmarks (not part of the tests: timing is measured here, never asserted there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh --test
uv run python -m bench.retraction "$@"
