//! Test support.
pub mod metastore_fixture;
