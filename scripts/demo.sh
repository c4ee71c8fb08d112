#!/usr/bin/env bash
# The main job: install and build, then run the three-datacenter demo — dc1 (primary), dc2 and
# dc3 on 127.0.0.1, each with one server and one built-in mesh gateway, federated through the
# gateways (TLS material generated on the first run into .meshfed-three-dc/). Ctrl-C stops it.
# Extra arguments go to the demo (e.g. --ephemeral for free ports and throwaway data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/examples/three-dc/main.js "$@"
