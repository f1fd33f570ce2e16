//! `hive-smallfiles-agent` binary.

fn main() {}
