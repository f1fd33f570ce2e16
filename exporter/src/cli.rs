//! Command-line interface: flags in exporter-toolkit style, subcommands, and what each
//! subcommand does. The binary's `main` only calls [`main`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use hive_smallfiles_core::check::{check_metastore, check_storage, print_lines};
use hive_smallfiles_core::config::ProcessEnv;
use hive_smallfiles_core::service::{LogFormat, cancel_on_signal, run_main};
use hive_smallfiles_core::web::{self, WebConfig};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::report::{self, ReportFormat};
use crate::service::{self, ServeOptions};
use crate::snapshot::ScanResult;

/// What a subcommand fails with beyond its exit code: printed with its causes by [`main`].
type CliResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

/// The `hive-smallfiles-exporter` program: parses the flags and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = cli.log_level.clone();
    let format = cli.log_format;
    run_main("hive-smallfiles-exporter", &level, format, run(cli))
}
/// Exit code of configuration errors (sysexits `EX_USAGE`... `EX_CONFIG` is 78; 64 is what
/// operators' wrappers usually expect from a bad invocation or file).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code of `scan --once` when a cluster's scan failed: the MetaStore could not be read,
/// the scan timed out, or no table could be listed (every NameNode down). Also that of
/// `check` when something is unreachable, and of any other error.
pub const EXIT_SCAN_FAILED: u8 = 1;
/// Exit code of `scan --once` when every scan completed but some tables could not be listed
/// (the report shows them with their previous numbers missing: a single run has none).
pub const EXIT_SCAN_PARTIAL: u8 = 2;

/// Prometheus exporter of small-file statistics for Hive/Impala warehouses.
#[derive(Debug, Parser)]
#[command(name = "hive-smallfiles-exporter", version, about)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long = "config.file",
        visible_alias = "config",
        default_value = "/etc/hive-smallfiles/exporter.toml",
        global = true
    )]
    pub config_file: PathBuf,
    /// Validate the configuration file and exit.
    #[arg(long = "check-config", global = true)]
    pub check_config: bool,
    /// Address to listen on for HTTP (`:9878`, `127.0.0.1:9878`).
    #[arg(long = "web.listen-address", default_value = ":9878", global = true)]
    pub listen_address: String,
    /// exporter-toolkit style web config file (TLS, basic auth, headers).
    #[arg(long = "web.config.file", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Path of the metrics endpoint.
    #[arg(long = "web.telemetry-path", default_value = "/metrics", global = true)]
    pub telemetry_path: String,
    /// Log filter (`info`, `debug`, `hive_smallfiles_exporter=debug`...).
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format: `logfmt` or `json` (one event per line; values with control
    /// characters escaped).
    #[arg(long = "log.format", default_value = "logfmt", global = true)]
    pub log_format: LogFormat,
    /// Seconds to let HTTP requests finish after SIGTERM/SIGINT.
    #[arg(long = "shutdown.grace-period", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub grace_period: Duration,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan on each cluster's interval and serve /metrics (the default).
    Serve,
    /// Scan every cluster once and print the report, sorted by excess files. Exit code 0
    /// when every table was listed, 2 when some tables failed, 1 when a cluster's scan failed
    /// (MetaStore, timeout, no table listable), 64 on a configuration error.
    Scan {
        /// Run a single scan (the only mode; kept for clarity in scripts).
        #[arg(long)]
        once: bool,
        /// Report format.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Connect to the MetaStore and every NameNode of every cluster and print one line per
    /// endpoint: what it reached, with which authentication and TLS, and `OK`/`active`/
    /// `standby` or `FAILED`/`DOWN` with the cause. Exit code 0 when every endpoint is
    /// usable, 1 otherwise, 64 on a configuration error.
    Check,
}

/// Runs the CLI; errors are printed by the caller.
pub async fn run(cli: Cli) -> CliResult {
    let config = match Config::load(&cli.config_file, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hive-smallfiles-exporter: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let web = match cli
        .web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()
    {
        Ok(w) => w.unwrap_or_default(),
        Err(e) => {
            eprintln!("hive-smallfiles-exporter: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if cli.check_config {
        println!(
            "Configuration OK: {} cluster(s): {}",
            config.clusters.len(),
            config
                .clusters
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            serve(
                config,
                web,
                &cli.listen_address,
                cli.telemetry_path,
                cli.grace_period,
            )
            .await
        }
        Command::Scan {
            once: _,
            format,
            cluster,
        } => scan_once(config, format, cluster.as_deref()).await,
        Command::Check => check(config).await,
    }
}

async fn serve(
    config: Config,
    web: WebConfig,
    listen: &str,
    telemetry_path: String,
    grace: Duration,
) -> CliResult {
    let listener = web::bind(listen).await?;
    let options = ServeOptions {
        web,
        telemetry_path,
        grace,
    };
    let metrics = Arc::new(Metrics::new());
    service::run(config, options, metrics, listener, cancel_on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn scan_once(config: Config, format: ReportFormat, only: Option<&str>) -> CliResult {
    let metrics = Metrics::new();
    let mut scanners = service::build_scanners(&config, &metrics)?;
    if let Some(name) = only {
        scanners.retain(|s| s.config().name == name);
        if scanners.is_empty() {
            eprintln!("hive-smallfiles-exporter: no cluster named {name:?}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    }
    let cancel = cancel_on_signal();
    let filesystems: Vec<_> = scanners
        .iter()
        .map(|s| {
            (
                s.config().name.clone(),
                std::sync::Arc::clone(s.filesystem()),
            )
        })
        .collect();
    let mut snapshots = Vec::new();
    let mut worst = ScanResult::Success;
    for mut scanner in scanners {
        let progress = scanner.progress_handle();
        let name = scanner.config().name.clone();
        let ticker = tokio::spawn(async move {
            let started = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let every = if tty {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(10)
            };
            loop {
                tokio::time::sleep(every).await;
                let done = progress.tables_done.load(Ordering::Relaxed);
                let total = progress.tables_total.load(Ordering::Relaxed);
                let parts = progress.partitions_done.load(Ordering::Relaxed);
                #[allow(clippy::cast_precision_loss)]
                let rate = parts as f64 / started.elapsed().as_secs_f64().max(0.001);
                let line =
                    format!("{name}: tables {done}/{total}, partitions {parts} ({rate:.0}/s)");
                if tty {
                    eprint!("\r\x1b[2K{line}")
                } else {
                    eprintln!("{line}")
                }
            }
        });
        let snapshot = scanner.scan(&cancel).await;
        ticker.abort();
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[2K");
        }
        worst = worse(worst, snapshot.scan.result());
        snapshots.push(snapshot);
    }
    // Gives back what the clients hold (WebHDFS delegation tokens), as the service does.
    hive_smallfiles_core::fs::close_all(&filesystems, service::CLOSE_TIMEOUT).await;
    print!("{}", report::render(&snapshots, format));
    Ok(ExitCode::from(scan_exit_code(worst)))
}

/// The worse of two scan results.
fn worse(a: ScanResult, b: ScanResult) -> ScanResult {
    let rank = |r| match r {
        ScanResult::Success => 0,
        ScanResult::Partial => 1,
        ScanResult::Failure => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The exit code of `scan --once` for the worst result among its clusters: 0, 2 (partial,
/// [`EXIT_SCAN_PARTIAL`]) or 1 (failed, [`EXIT_SCAN_FAILED`]).
pub fn scan_exit_code(worst: ScanResult) -> u8 {
    match worst {
        ScanResult::Success => 0,
        ScanResult::Partial => EXIT_SCAN_PARTIAL,
        ScanResult::Failure => EXIT_SCAN_FAILED,
    }
}

async fn check(config: Config) -> CliResult {
    let metrics = Metrics::new();
    let mut ok = true;
    for cluster in &config.clusters {
        let mut lines = vec![check_metastore(&cluster.name, &cluster.metastore).await];
        lines.extend(check_storage(&cluster.name, &cluster.storage, &metrics.webhdfs).await);
        ok &= print_lines(&lines);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
