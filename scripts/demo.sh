#!/usr/bin/env bash
# The main job: install and build, then run a development agent with embedded defaults
# (server in dc1, ephemeral TLS material, HTTP API on 127.0.0.1:8500). Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/meshfed.js agent -dev "$@"
