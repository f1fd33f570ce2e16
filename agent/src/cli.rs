//! Command line of the agent: exporter-toolkit style flags and the subcommands `serve`
//! (default), `plan` (dry-run one table), `merge` (one table now, in the foreground),
//! `recover` (finish or undo interrupted merges), `rollback` (restore a merge's backup) and
//! `--check-config`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use std::num::{NonZeroU32, NonZeroU64};

use hive_smallfiles_agent::api::{self, ApiSettings, ApiState};
use hive_smallfiles_agent::audit::AuditLog;
use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_agent::executor::MergeRunner;
use hive_smallfiles_agent::intake::IntakeSettings;
use hive_smallfiles_agent::metrics::AgentMetrics;
use hive_smallfiles_agent::queue::{Queue, QueueSettings, RetrySettings, run_workers};
use hive_smallfiles_agent::work::{
    JobOutcome, JobRecord, JobRunner, JobState, Source, TableKey, WorkItem,
};
use hive_smallfiles_exporter::config::ProcessEnv;
use hive_smallfiles_exporter::fs::webhdfs::WebHdfsMetrics;
use hive_smallfiles_exporter::server::WebConfig;
use tokio_util::sync::CancellationToken;

/// Exit code of configuration errors.
const EXIT_CONFIG: u8 = 64;

/// Merge agent: Alertmanager webhooks to verified small-file merges.
#[derive(Debug, Parser)]
#[command(name = "hive-smallfiles-agent", version, about)]
pub(crate) struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long = "config.file",
        visible_alias = "config",
        default_value = "/etc/hive-smallfiles/agent.toml",
        global = true
    )]
    pub(crate) config_file: PathBuf,
    /// Validate the configuration file and exit.
    #[arg(long = "check-config", global = true)]
    pub(crate) check_config: bool,
    /// Address to listen on for the webhook, API and metrics.
    #[arg(long = "web.listen-address", default_value = ":9879", global = true)]
    pub(crate) listen_address: String,
    /// exporter-toolkit style web config file (TLS, basic auth, headers).
    #[arg(long = "web.config.file", global = true)]
    pub(crate) web_config_file: Option<PathBuf>,
    /// Log filter.
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub(crate) log_level: String,
    /// Time to let running statements reach a safe point after SIGTERM/SIGINT.
    #[arg(long = "shutdown.grace-period", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub(crate) grace_period: Duration,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
    let metrics = Arc::new(AgentMetrics::new());
    let audit = Arc::new(AuditLog::open(&config.audit_log)?);
    let first_job_id = audit.max_job_id() + 1;
    let runner = MergeRunner::new(
        &config.clusters,
        config.policy.clone(),
        audit,
        Arc::clone(&metrics),
        &WebHdfsMetrics::default(),
        &config.native,
    )
    .map_err(anyhow::Error::msg)?;
    match cli.command.unwrap_or(Command::Serve) {
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
            };
            let outcome = runner
                .run(
                    &job,
                    &hive_smallfiles_agent::work::Unlimited,
                    &CancellationToken::new(),
                )
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
            let failed = results.iter().any(|r| !r["error"].is_null());
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
            serve(
                config,
                web,
                Arc::new(runner),
                metrics,
                &cli.listen_address,
                cli.grace_period,
            )
            .await
        }
    }
}

fn queue_settings(config: &AgentConfig, first_job_id: u64) -> QueueSettings {
    let q = &config.queue;
    QueueSettings {
        capacity: q.capacity,
        max_concurrent: q.max_running,
        max_concurrent_per_cluster: q.cluster_max_running,
        merges_per_hour: NonZeroU32::new(q.merges_per_hour),
        merges_per_hour_per_cluster: NonZeroU32::new(q.cluster_merges_per_hour),
        bytes_per_hour: NonZeroU64::new(q.bytes_per_hour.0),
        bytes_per_hour_per_cluster: NonZeroU64::new(q.cluster_bytes_per_hour.0),
        cooldown: q.cooldown,
        retry: RetrySettings {
            max_attempts: q.max_attempts,
            base: q.retry_backoff,
            cap: q.retry_backoff_max,
        },
        intake: IntakeSettings {
            clusters: Some(config.clusters.keys().cloned().collect()),
            ..IntakeSettings::default()
        },
        first_job_id,
        ..QueueSettings::default()
    }
}

async fn serve(
    config: AgentConfig,
    web: WebConfig,
    runner: Arc<MergeRunner>,
    metrics: Arc<AgentMetrics>,
    listen: &str,
    grace: Duration,
) -> anyhow::Result<ExitCode> {
    let first_job_id = runner.first_job_id();
    let queue = Arc::new(Queue::new(queue_settings(&config, first_job_id), metrics));
    let listener = hive_smallfiles_exporter::server::bind(listen).await?;
    let local = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let api_settings = ApiSettings {
        bearer_token: config.bearer_token.as_ref().map(|s| s.expose().to_owned()),
        web: web.clone(),
        ..ApiSettings::default()
    };
    if config.native.recover_on_start {
        let results = runner.recover_all().await;
        tracing::info!(merge_dirs = results.len(), "Recovery at start-up done.");
    }
    let sweeper = tokio::spawn({
        let runner = Arc::clone(&runner);
        let shutdown = shutdown.clone();
        let every = config.native.sweep_interval;
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                runner.recover_all().await;
            }
        }
    });
    let runner: Arc<dyn JobRunner> = runner;
    let router = api::router(ApiState::new(
        api_settings,
        Arc::clone(&queue),
        Arc::clone(&runner),
        shutdown.clone(),
    ));
    let workers = tokio::spawn(run_workers(Arc::clone(&queue), runner, shutdown.clone()));
    let scheme = if web.tls_enabled() { "https" } else { "http" };
    tracing::info!(address = %local, audit_log = %config.audit_log.display(), "Listening; webhook at {scheme}://{local}/api/v1/alerts");
    let http = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            hive_smallfiles_exporter::server::serve(
                listener,
                router,
                &web,
                shutdown,
                Duration::from_secs(10),
            )
            .await
        }
    });
    hive_smallfiles_exporter::service::shutdown_signal().await;
    tracing::info!(
        ?grace,
        "Shutting down: no new jobs; running merges finish their current partition."
    );
    shutdown.cancel();
    if tokio::time::timeout(grace, workers).await.is_err() {
        tracing::warn!("Jobs still running after the grace period; stopping between statements.");
    }
    sweeper.abort();
    let _ = http.await;
    Ok(ExitCode::SUCCESS)
}
