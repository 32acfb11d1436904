#!/usr/bin/env bash
# Set up and start the broadcaster on its embedded defaults (broadcaster.yaml here):
# an embedded MQTT broker on 127.0.0.1:1883, SQLite in var/, channels that only log,
# HTTP on 127.0.0.1:8080. Extra arguments go to `broadcaster run` (e.g. --dry-run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"  # where bootstrap.sh may have put uv
uv run broadcaster validate
exec uv run broadcaster run "$@"
