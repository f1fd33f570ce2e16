#!/usr/bin/env bash
# The local demo of the whole loop: starts (or installs) MariaDB, Prometheus, Alertmanager and
# Spark's Thrift Server, creates tables full of small files, runs the exporter and the agent
# (in-process, in the demo program) and shows alerts firing and merges happening until
# Ctrl-C. Ports: exporter 9878, agent 9879, Prometheus 9090, Alertmanager 9093
# (HSF_DEMO_PORTS=e,a,p,am to change them).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/scripts/ensure-services.sh --no-postgres
tests/scripts/spark-thrift.sh start
cargo build --release --quiet -p hive-smallfiles-tests --bin demo
exec target/release/demo "$@"
