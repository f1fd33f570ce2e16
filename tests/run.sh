#!/usr/bin/env bash
# The test command: installs/starts what the tests need, then runs every test of the
# workspace (unit, integration against real MariaDB/PostgreSQL, promtool, Alertmanager and
# Spark's Thrift Server).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/scripts/ensure-services.sh
# The real HiveServer2-protocol engine for the agent's tests (installs pyspark on first use).
if [ "${HSF_SPARK_TESTS:-}" != skip ]; then
  tests/scripts/spark-thrift.sh start
fi
if command -v cargo-nextest >/dev/null 2>&1 || cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
