#!/usr/bin/env bash
# Set up and start the broadcaster on its embedded defaults (broadcaster.yaml in this folder).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
# Until the daemon lands, this checks the sample deployment and previews a warning.
uv run broadcaster validate
uv run broadcaster render major_fire --stage warning \
  --param location="Ackerstraße 12" --param district=Flingern-Nord \
  --param smoke_direction=Nordost "$@"
