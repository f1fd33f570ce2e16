//! Test support for hive-smallfiles: MetaStore fixtures on real MariaDB/PostgreSQL, a WebHDFS
//! server written from the Hadoop documentation, `file:` warehouses, independent ground truth,
//! exposition helpers, our services in-process and our binaries as child processes, and the
//! skipping of tests whose service is missing. Used by the integration tests (one binary,
//! `tests/it/`), the demo and the benchmark.

pub mod agent_process;
pub mod gss_acceptor;
pub mod kdc;
pub mod logfmt;
pub mod metastore_fixture;
pub mod process;
pub mod prom;
pub mod rows;
pub mod samples;
pub mod scenario;
pub mod services;
pub mod skip;
pub mod spark;
pub mod stack;
pub mod truth;
pub mod warehouse;
pub mod webhdfs_server;
