//! Test support.
pub mod webhdfs_server;
