//! `hive-smallfiles-exporter` binary.

fn main() {}
