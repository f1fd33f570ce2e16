//! The exporter's command line, built by this crate so that its tests run it as a process
//! (`env!("CARGO_BIN_EXE_hsf-exporter")`) without building the workspace's binaries.
fn main() -> std::process::ExitCode {
    hive_smallfiles_exporter::cli::main()
}
