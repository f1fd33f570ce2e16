//! The long-running agent: [`run`] serves the webhook, API and metrics on a bound listener,
//! runs the queue's workers and the recovery sweep, until its shutdown token fires (one
//! shutdown path; tests run it in-process). After shutdown no job starts; running merges
//! finish their current step within the grace period.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_core::web::{self, WebConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;

use crate::api::{self, ApiSettings, ApiState};
use crate::audit::AuditLog;
use crate::config::AgentConfig;
use crate::executor::MergeRunner;
use crate::intake::IntakeSettings;
use crate::metrics::AgentMetrics;
use crate::queue::{Queue, QueueSettings, RetrySettings, run_workers};
use crate::work::JobRunner;

/// How the agent serves HTTP and stops.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS, basic auth and headers (`--web.config.file`).
    pub web: WebConfig,
    /// Time for running merges to reach a step boundary after shutdown.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            web: WebConfig::default(),
            grace: Duration::from_secs(60),
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The audit log cannot be opened for appending.
    #[error("audit log {path}: {source}")]
    AuditLog {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A cluster's clients could not be built from the configuration.
    #[error("{0}")]
    Runner(String),
}

impl StartError {
    /// Start-up errors need an operator; retrying does not help.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The runner the configuration describes: its audit log opened, fresh metrics.
pub fn build_runner(config: &AgentConfig) -> Result<MergeRunner, StartError> {
    let audit = AuditLog::open(&config.audit_log).map_err(|source| StartError::AuditLog {
        path: config.audit_log.clone(),
        source,
    })?;
    MergeRunner::new(
        &config.clusters,
        config.policy.clone(),
        Arc::new(audit),
        Arc::new(AgentMetrics::new()),
        &WebHdfsMetrics::default(),
        &config.native,
    )
    .map_err(StartError::Runner)
}

/// The queue's settings from the configuration file.
pub fn queue_settings(config: &AgentConfig, first_job_id: u64) -> QueueSettings {
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

/// Runs the agent with `runner` (built from `config`) on `listener` until `shutdown` is
/// cancelled. Start-up recovery runs first when configured.
pub async fn run(
    config: AgentConfig,
    options: ServeOptions,
    runner: Arc<MergeRunner>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let metrics = runner.metrics();
    let first_job_id = runner.first_job_id();
    let queue = Arc::new(
        Queue::new(queue_settings(&config, first_job_id), metrics).with_store(runner.store()),
    );
    let web = options.web;
    let grace = options.grace;
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
    if let Ok(local) = listener.local_addr() {
        let scheme = if web.tls_enabled() { "https" } else { "http" };
        tracing::info!(address = %local, audit_log = %config.audit_log.display(), "Listening; webhook at {scheme}://{local}/api/v1/alerts");
    }
    let http = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { web::serve(listener, router, &web, shutdown, Duration::from_secs(10)).await }
    });
    shutdown.cancelled().await;
    tracing::info!(
        ?grace,
        "Shutting down: no new jobs; running merges finish their current partition."
    );
    if tokio::time::timeout(grace, workers).await.is_err() {
        tracing::warn!("Jobs still running after the grace period; stopping between statements.");
    }
    sweeper.abort();
    let _ = http.await;
}
