#!/usr/bin/env bash
# The whole test suite: setup (packages, npm ci, build), typecheck (tsc, part of the build),
# lint (eslint), then every test under test/ with Node's test runner (incl. examples and CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== lint" >&2
npx eslint .
echo "== tests" >&2
node --test --test-concurrency=2 --test-timeout=300000 dist/test/
