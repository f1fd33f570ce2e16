//! The native merge executor: merges a partition's files itself, through the cluster's
//! filesystem client, with a crash-safe commit protocol.

pub mod format;
