//! # hive-smallfiles exporter
//!
//! Finds the small-file problem of Hive/Impala warehouses and exports it as Prometheus gauges.
//!
//! ## Layout
//! * [`metastore`] reads the Hive MetaStore's backing database (MySQL/MariaDB, PostgreSQL).
//! * [`fs`] lists directories over WebHDFS or on a local `file:` warehouse.
//!
//! The library is public: the merge agent reuses the MetaStore readers, the filesystem
//! clients and the scanner.

pub mod fs;
pub mod metastore;
pub mod secret;
