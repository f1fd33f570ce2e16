#!/usr/bin/env bash
# The test command: installs/starts what the tests need, then runs every test of the
# workspace (unit, integration against real MariaDB/PostgreSQL, promtool checks).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/scripts/ensure-services.sh
if command -v cargo-nextest >/dev/null 2>&1 || cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
