//! `hive-smallfiles-agent`: everything is in the library's `cli`.

fn main() -> std::process::ExitCode {
    hive_smallfiles_agent::cli::main()
}
