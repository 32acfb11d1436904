#!/usr/bin/env bash
# The benchmark suite (not part of the tests: timing is measured here, never asserted
# there). Sets up what it needs (mosquitto, redis-server, the locked venv, and Apprise and
# py-spy in bench/.peer-venv), runs every measure or the ones named, writes
# bench/results/<label>.json and docs/benchmarks.md.
#
#   scripts/bench.sh [MEASURE ...] [--label before|after|NAME]
#   measures: floor latency fanout burst sms email webpush confirm profile
#   scripts/bench.sh retraction    # the older retraction benchmark, prints its own table
#
# Sizes and repeats come from BENCH_* variables (docs/benchmarks.md lists them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh --test
if [ "${1:-}" = "retraction" ]; then
  shift
  exec uv run python -m bench.retraction "$@"
fi
if [ ! -x bench/.peer-venv/bin/apprise ] || [ ! -x bench/.peer-venv/bin/py-spy ]; then
  # The peer in its own venv, so that it never shares a dependency with the daemon.
  uv venv --quiet --allow-existing bench/.peer-venv
  uv pip install --quiet --python bench/.peer-venv apprise py-spy
fi
exec uv run python -m bench "$@"
