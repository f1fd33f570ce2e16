//! Command line of the agent: exporter-toolkit style flags and the subcommands `serve`
//! (default), `plan` (dry-run one table), `merge` (one table now, in the foreground),
//! `recover` (finish or undo interrupted merges), `rollback` (restore a merge's backup),
//! `check` (reach every endpoint) and `--check-config`. The binary's `main` only calls [`main`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use hive_smallfiles_core::service::{LogFormat, cancel_on_signal, run_main};
use hive_smallfiles_core::web;

use crate::config::AgentConfig;
use crate::service::{self, ServeOptions};
use crate::work::{JobOutcome, JobRecord, JobRunner, JobState, Source, TableKey, WorkItem};

/// What a subcommand fails with beyond its exit code: printed with its causes by [`main`].
type CliResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

/// The `hive-smallfiles-agent` program: parses the flags and runs the command.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with these arguments (the first is the program's name).
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let level = cli.log_level.clone();
    let format = cli.log_format;
    run_main("hive-smallfiles-agent", &level, format, run(cli))
}
use hive_smallfiles_core::config::ProcessEnv;
use hive_smallfiles_core::web::WebConfig;
use tokio_util::sync::CancellationToken;

/// Exit code of configuration errors.
const EXIT_CONFIG: u8 = 64;

/// Merge agent: Alertmanager webhooks to verified small-file merges.
#[derive(Debug, Parser)]
#[command(name = "hive-smallfiles-agent", version, about)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long = "config.file",
        visible_alias = "config",
        default_value = "/etc/hive-smallfiles/agent.toml",
        global = true
    )]
    pub config_file: PathBuf,
    /// Validate the configuration file and exit.
    #[arg(long = "check-config", global = true)]
    pub check_config: bool,
    /// Address to listen on for the webhook, API and metrics.
    #[arg(long = "web.listen-address", default_value = ":9879", global = true)]
    pub listen_address: String,
    /// exporter-toolkit style web config file (TLS, basic auth, headers).
    #[arg(long = "web.config.file", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Log filter.
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format: `logfmt` or `json` (one event per line; values with control
    /// characters escaped).
    #[arg(long = "log.format", default_value = "logfmt", global = true)]
    pub log_format: LogFormat,
    /// Time to let running jobs reach a step boundary after SIGTERM/SIGINT (overrides
    /// `[shutdown] drain_timeout`).
    #[arg(long = "shutdown.grace-period", value_parser = humantime::parse_duration, global = true)]
    pub grace_period: Option<Duration>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive webhooks and merge (the default).
    Serve,
    /// Show the merge plan of one table without executing anything.
    Plan {
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// Database (`@catalog#db` for non-default Hive 3 catalogs).
        #[arg(long)]
        database: String,
        /// Table.
        #[arg(long)]
        table: String,
    },
    /// Merge one table (or some of its partitions) now, in the foreground, then exit.
    Merge {
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// Database (`@catalog#db` for non-default Hive 3 catalogs).
        #[arg(long)]
        database: String,
        /// Table.
        #[arg(long)]
        table: String,
        /// Partition name (`k=v/k2=v2`), repeatable; default: every partition worth it.
        #[arg(long)]
        partition: Vec<String>,
        /// Plan only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Find every merge directory under the allowed tables and bring each to a consistent
    /// state (roll forward or back; remove expired backups and abandoned staging).
    Recover,
    /// Restore the original files of a committed merge.
    Rollback {
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// The merge directory (`<parent>/.hive-smallfiles.<partition>/<merge id>`).
        #[arg(long)]
        merge_dir: String,
    },
    /// Connect to every cluster's MetaStore database, storage endpoints and HiveServer2
    /// (authenticate, open a session, `SELECT 1`) and print one line per endpoint: what it
    /// reached, with which authentication and TLS, and `OK`/`active`/`standby` or
    /// `FAILED`/`DOWN` with the cause. Exit code 0 when every endpoint is usable, 1 when
    /// one is not, 64 on a configuration error.
    Check,
}

pub async fn run(cli: Cli) -> CliResult {
    let config = match AgentConfig::load(&cli.config_file, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hive-smallfiles-agent: {e}");
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
            eprintln!("hive-smallfiles-agent: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if cli.check_config {
        println!(
            "Configuration OK: {} cluster(s): {}",
            config.clusters.len(),
            config
                .clusters
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if matches!(cli.command, Some(Command::Check)) {
        return Ok(if crate::check::run_check(&config).await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let runner = service::build_runner(&config)?;
    let first_job_id = runner.first_job_id();
    match cli.command.unwrap_or(Command::Serve) {
        // Answered above, without building the runner.
        Command::Check => unreachable!("handled before"),
        Command::Plan {
            cluster,
            database,
            table,
        } => {
            let key = TableKey {
                cluster,
                database,
                table,
            };
            match runner.preview(&key).await {
                Ok(plan) => {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("hive-smallfiles-agent: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Merge {
            cluster,
            database,
            table,
            partition,
            dry_run,
        } => {
            let now = std::time::SystemTime::now();
            let job = JobRecord {
                id: first_job_id,
                item: WorkItem {
                    key: TableKey {
                        cluster,
                        database,
                        table,
                    },
                    partitions: partition.into_iter().collect(),
                    priority: 0,
                    fingerprints: std::collections::BTreeSet::new(),
                    source: Source::Manual,
                    dry_run,
                },
                state: JobState::Running,
                attempts: 1,
                created_at: now,
                started_at: Some(now),
                finished_at: None,
                not_before: None,
                outcome: None,
                stopped: None,
            };
            let outcome = runner
                .run(&job, &crate::work::Unlimited, &CancellationToken::new())
                .await;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(match outcome {
                JobOutcome::Merged { .. } | JobOutcome::DryRun { .. } => ExitCode::SUCCESS,
                JobOutcome::Skipped { .. } => ExitCode::from(2),
                JobOutcome::Failed { .. } => ExitCode::FAILURE,
            })
        }
        Command::Recover => {
            let results = runner.recover_all().await;
            println!("{}", serde_json::to_string_pretty(&results)?);
            let mut failed = false;
            for r in results.iter().filter(|r| r.error.is_some()) {
                failed = true;
                eprintln!(
                    "hive-smallfiles-agent: not recovered: cluster {} {}: {}",
                    r.cluster,
                    r.merge_dir
                        .as_deref()
                        .or(r.area.as_deref())
                        .unwrap_or("(staging areas not listed)"),
                    r.error.as_deref().unwrap_or_default()
                );
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Rollback { cluster, merge_dir } => {
            match runner.rollback_merge_dir(&cluster, &merge_dir).await {
                Ok(r) => {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("hive-smallfiles-agent: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Serve => {
            let store = service::open_state(&config, runner.metrics())?;
            let runner = runner.with_store(store);
            let listener = web::bind(&cli.listen_address).await?;
            let options = ServeOptions {
                web,
                grace: cli.grace_period.unwrap_or(config.shutdown.drain_timeout),
                http_grace: config.shutdown.http_grace,
            };
            service::run(
                config,
                options,
                Arc::new(runner),
                listener,
                cancel_on_signal(),
            )
            .await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
