//! # hive-smallfiles merge agent
//!
//! Turns small-file alerts into merges an operator can trust: Alertmanager webhooks are
//! deduplicated into work items, checked against policy and the live MetaStore, queued and
//! rate-limited, planned per table format and type, executed through the cluster's own SQL
//! engine (HiveServer2 protocol), verified by row counts and rescans, and reported as metrics,
//! an audit log and a JSON API.

pub mod alertmanager;
pub mod api;
pub mod audit;
pub mod check;
pub mod cli;
pub mod config;
pub mod events;
pub mod executor;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hiveserver2;
pub mod intake;
pub mod metrics;
pub mod native;
pub mod plan;
pub mod policy;
pub mod queue;
pub mod service;
pub mod sql;
pub mod store;
pub mod work;
