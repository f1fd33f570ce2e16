//! Test support for hive-smallfiles: MetaStore fixtures on real MariaDB/PostgreSQL, a WebHDFS
//! server written from the Hadoop documentation, `file:` warehouses, independent ground truth,
//! and exposition helpers. Used by the integration tests, the demo and the benchmark.

pub mod agent_process;
pub mod exporter_process;
pub mod metastore_fixture;
pub mod prom;
pub mod rows;
pub mod samples;
pub mod scenario;
pub mod spark;
pub mod stack;
pub mod truth;
pub mod warehouse;
pub mod webhdfs_server;
