#!/usr/bin/env bash
# The local demo of the whole loop: starts (or installs) MariaDB, Prometheus, Alertmanager and
# Spark's Thrift Server, creates tables full of small files, runs the exporter and the agent
# (in-process, in the demo program) and shows alerts firing and merges happening until
# Ctrl-C, then a before/after summary per table. Ports: exporter 9878, agent 9879,
# Prometheus 9090, Alertmanager 9093 (HSF_DEMO_PORTS=e,a,p,am to change them) and Spark's
# Thrift Server 10000 (HSF_SPARK_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[demo] %s\n' "$*" >&2; }

command -v cargo >/dev/null || { say "needs the Rust toolchain (rustup, Rust 1.85 or newer: edition 2024)"; exit 1; }
say "checking MariaDB, Prometheus and Alertmanager (installed from Debian's packages if missing)"
tests/scripts/ensure-services.sh --no-postgres

# Stop Spark's Thrift Server at the end only if this demo started it.
spark_was_running=0
tests/scripts/spark-thrift.sh status >/dev/null 2>&1 && spark_was_running=1
stop_spark() {
  if [ "$spark_was_running" = 0 ]; then
    say "stopping the Spark Thrift Server this demo started"
    tests/scripts/spark-thrift.sh stop >/dev/null 2>&1 || true
  else
    say "the Spark Thrift Server was running before the demo and keeps running (tests/scripts/spark-thrift.sh stop)"
  fi
}
trap stop_spark EXIT
say "starting Spark's Thrift Server (installs pyspark, ~500 MB, on the first run; needs Java 17)"
tests/scripts/spark-thrift.sh start

if [ ! -x target/release/demo ]; then
  say "building the demo (release). The first build compiles ~400 crates: about 10-15 minutes on"
  say "2 cores and ~2 GB in target/; cargo shows its progress below. Later runs start at once."
fi
tests/scripts/build-deps.sh
cargo build --release -p hive-smallfiles-tests --bin demo
# Not exec: the EXIT trap stops what this script started after the demo ends (Ctrl-C included).
trap ':' INT
target/release/demo "$@" || true
