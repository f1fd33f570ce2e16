//! The agent's command line (with the fail points the crash tests stop it at), built by this
//! crate so that its tests run it as a process (`env!("CARGO_BIN_EXE_hsf-agent")`).
fn main() -> std::process::ExitCode {
    hive_smallfiles_agent::cli::main()
}
