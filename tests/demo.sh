#!/usr/bin/env bash
# The local demo: starts (or installs) MariaDB, creates a demo Hive MetaStore with a file:
# warehouse full of small files, prints the exporter's report and serves /metrics on
# http://127.0.0.1:9878/metrics until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/scripts/ensure-services.sh --no-postgres --no-prometheus
cargo build --release --quiet --workspace --bins
exec target/release/demo "$@"
