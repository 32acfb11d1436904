#!/usr/bin/env bash
# What a fresh Debian/Ubuntu machine needs before the broadcaster runs: uv, then the
# locked Python dependencies in .venv. With --test also what the tests start for real:
# mosquitto, redis-server and Chromium (for the duty officer page; Playwright drives the
# Debian package, it cannot download a browser here), jq and openssl (the shell recipes
# of docs/signing.md are run as written) and promtool, from the prometheus package (it
# checks deploy/monitoring/). Used by scripts/run.sh and scripts/test.sh; safe to repeat.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-}" = "--test" ]; then
  packages=()
  # tool:package, where the Debian package is named otherwise than its command.
  for pair in mosquitto redis-server chromium jq openssl promtool:prometheus; do
    tool="${pair%%:*}" package="${pair#*:}"
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || packages+=("$package")
  done
  if [ "${#packages[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${packages[@]}" >/dev/null
  fi
fi

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --locked --quiet
