#!/usr/bin/env bash
# What a fresh Debian/Ubuntu machine needs before the broadcaster runs: uv, then the
# locked Python dependencies in .venv. With --test also what the tests start for real:
# mosquitto and its clients, redis-server and Chromium (for the duty officer page;
# Playwright drives the Debian package, it cannot download a browser here), jq and
# openssl (the shell recipes of docs/signing.md are run as written) and promtool, from
# the prometheus package (it checks deploy/monitoring/). Used by scripts/run.sh and
# scripts/test.sh; safe to repeat.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-}" = "--test" ]; then
  packages=()
  # tool:package where the Debian package is named otherwise than its command;
  # mosquitto_sub runs the compose health check, promtool checks deploy/monitoring/.
  for entry in mosquitto redis-server chromium jq openssl mosquitto_sub:mosquitto-clients \
      promtool:prometheus; do
    tool=${entry%%:*}
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || packages+=("${entry#*:}")
  done
  if [ "${#packages[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${packages[@]}" >/dev/null
  fi
fi

export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  pip=(python3 -m pip install --quiet --disable-pip-version-check)
  # Debian 12/13's own Python refuses pip installs (PEP 668, "externally managed"): uv
  # is one static binary, so it goes to ~/.local/bin for this user, beside no package.
  "${pip[@]}" uv 2>/dev/null || "${pip[@]}" --user --break-system-packages uv
fi
uv sync --locked --quiet
