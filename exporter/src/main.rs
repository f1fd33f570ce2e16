//! `hive-smallfiles-exporter`: everything is in the library's `cli`.

fn main() -> std::process::ExitCode {
    hive_smallfiles_exporter::cli::main()
}
