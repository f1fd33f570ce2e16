//! # hive-smallfiles exporter
//!
//! Finds the small-file problem of Hive/Impala warehouses and exports it as Prometheus gauges.
//!
//! ## Layout
//! * [`config`] — the TOML file, validated at start-up into typed values.
//! * [`metastore`] — reads the Hive MetaStore's backing database (MySQL/MariaDB, PostgreSQL).
//! * [`fs`] — lists directories over WebHDFS or on a local `file:` warehouse.
//! * [`scan`] — one scan of one cluster: MetaStore snapshot + listings → [`snapshot`].
//! * [`metrics`] — renders snapshots and live counters in Prometheus formats.
//! * [`server`] — HTTP endpoints (`/metrics`, `/healthz`, `/ready`), TLS and basic auth.
//! * [`report`] — the operator's report of `scan --once` (table, JSON, CSV).
//! * [`service`] — the long-running exporter: scan loops, shutdown.
//!
//! The library is public: the merge agent reuses the MetaStore readers, the filesystem
//! clients and the scanner.

pub mod config;
pub mod fs;
pub mod metastore;
pub mod metrics;
pub mod report;
pub mod scan;
pub mod secret;
pub mod server;
pub mod service;
pub mod snapshot;
