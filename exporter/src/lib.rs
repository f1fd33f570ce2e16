//! # hive-smallfiles exporter
//!
//! Finds the small-file problem of Hive/Impala warehouses and exports it as Prometheus gauges.
//! Depends on the core's read side only: it never changes a file.
//!
//! ## Layout
//! * [`config`] — the TOML file, validated at start-up into typed values (the shared
//!   `metastore` and `storage` sections are the core's).
//! * [`scan`] — one scan of one cluster: MetaStore snapshot + listings → [`snapshot`].
//! * [`metrics`] — renders snapshots and live counters in Prometheus formats.
//! * [`server`] — HTTP endpoints (`/metrics`, `/healthz`, `/ready`, landing page).
//! * [`report`] — the operator's report of `scan --once` (table, JSON, CSV).
//! * [`service`] — the long-running exporter: [`service::run`] (scan loops + HTTP server on
//!   a bound listener until a shutdown token fires).
//! * [`cli`] — flags and subcommands; `main` only hands over to [`cli::main`].

pub mod cli;
pub mod config;
pub mod metrics;
pub mod report;
pub mod scan;
pub mod server;
pub mod service;
pub mod shard;
pub mod snapshot;
