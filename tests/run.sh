#!/usr/bin/env bash
# The test command: installs/starts what the tests need, then runs every test of the
# workspace (unit, integration against real MariaDB/PostgreSQL, promtool, Prometheus,
# Alertmanager and Spark's Thrift Server). Extra arguments go to the test runner
# (`cargo nextest run`, or `cargo test` without nextest).
#
# HSF_SKIP=spark   does not start Spark's Thrift Server (slow to install) and skips its tests.
# A test whose service is missing prints `SKIPPED: <test>: <why>`; they are listed and counted
# at the end (the runner hides the output of tests that pass). With CI=true a skip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/scripts/build-deps.sh
tests/scripts/ensure-services.sh
# The Kerberos realm of the secured-cluster tests, started once before tests share it.
tests/scripts/kdc.sh start
# MariaDB and PostgreSQL with TLS (second instances on 3307 and 5433).
tests/scripts/tls-databases.sh start ||
  echo "[run.sh] the TLS databases did not start: their tests will be skipped (failed with CI=true)" >&2
# The real HiveServer2-protocol engine for the agent's tests (installs pyspark on first use).
if [[ ",${HSF_SKIP:-}," != *,spark,* ]]; then
  # The Kerberized servers of the secured-cluster tests (10001, 10002) start beside it, in
  # the background; tests that need them wait for the same script's start.
  tests/scripts/spark-thrift-secure.sh start >"${TMPDIR:-/tmp}/hsf-spark-secure.log" 2>&1 &
  tests/scripts/spark-thrift.sh start ||
    echo "[run.sh] Spark's Thrift Server did not start: its tests will be skipped (failed with CI=true)" >&2
fi
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$target_dir"
export HSF_SKIPPED_FILE="$target_dir/hsf-skipped-tests.txt"
rm -f "$HSF_SKIPPED_FILE"
status=0
if command -v cargo-nextest >/dev/null 2>&1 || cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi
# Said only when something was skipped, so that the runner's own summary stays the last line
# of a complete run.
if [ -s "$HSF_SKIPPED_FILE" ]; then
  skipped=$(sort -u "$HSF_SKIPPED_FILE" | wc -l)
  echo
  sort -u "$HSF_SKIPPED_FILE"
  echo "SKIPPED: $skipped test(s) did not run (listed above; the runner counted them as passed)"
fi
exit "$status"
