//! The integration tests of hive-smallfiles, as one test binary (one link on small machines):
//! each module is one former test file. Run them with `tests/run.sh`, which installs and
//! starts the services they need; `HSF_SKIP=spark` skips the Spark Thrift Server tests (each
//! skipped test prints `SKIPPED: …`, tests/run.sh counts them, and `CI=true` fails them).
//!
//! Our services run in-process on listeners the tests bind; the process-level tests (the
//! command line, signals, SIGKILL at fail points) run this crate's own binaries.

/// The exporter's command line (`src/bin/hsf-exporter.rs`), built by cargo for these tests.
const EXPORTER_BIN: &str = env!("CARGO_BIN_EXE_hsf-exporter");
/// The agent's command line (`src/bin/hsf-agent.rs`), built by cargo for these tests.
const AGENT_BIN: &str = env!("CARGO_BIN_EXE_hsf-agent");

mod agent_budget;
mod agent_e2e;
mod agent_recovery;
mod agent_spark;
mod agent_state;
mod alerts;
mod cardinality;
mod check_endpoints;
mod cli;
mod dashboards;
mod deploy_files;
mod engine_compression;
mod exporter_e2e;
mod full_loop;
mod hiveserver2;
mod hs2_secure;
mod kerberos;
mod log_lines;
mod metastore;
mod metastore_errors;
mod metastore_tls;
mod native_commit;
mod native_formats;
mod native_spark;
mod scan_report;
mod scan_streaming;
mod secure_loop;
mod secure_shutdown;
mod storage_outage;
mod switch_spark;
mod unreferenced_files;
mod unsupported_auth;
mod web;
mod web_limits;
mod webhdfs_kerberos;
mod webhdfs_scan;
mod webhdfs_server;
mod webhdfs_write;
