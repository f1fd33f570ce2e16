//! The long-running agent: [`run`] serves the webhook, API and metrics on a bound listener,
//! runs the queue's workers and the recovery sweep, until its shutdown token fires (one
//! shutdown path; tests run it in-process). After shutdown no job starts; running jobs stop
//! at their next step boundary within the drain timeout and are queued again (in the state
//! store, for the restart); open HTTP requests get the HTTP grace period.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use hive_smallfiles_core::web::{self, WebConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use hive_smallfiles_core::fs::close_all;

use crate::api::{self, ApiSettings, ApiState};
use crate::audit::AuditLog;
use crate::config::AgentConfig;
use crate::executor::MergeRunner;
use crate::intake::IntakeSettings;
use crate::metrics::AgentMetrics;
use crate::queue::{Queue, QueueSettings, RetrySettings, run_workers};
use crate::store::{HistoryLimits, RedbStore, StoreError};
use crate::work::JobRunner;

/// How the agent serves HTTP and stops.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS, basic auth and headers (`--web.config.file`).
    pub web: WebConfig,
    /// Time for running jobs to reach a step boundary after shutdown (`[shutdown]
    /// drain_timeout`, `--shutdown.grace-period`).
    pub grace: Duration,
    /// Time for open HTTP requests to complete after shutdown (`[shutdown] http_grace`).
    pub http_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            web: WebConfig::default(),
            grace: Duration::from_secs(60),
            http_grace: Duration::from_secs(10),
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
    /// The state store cannot be opened (another agent has it open, no permission).
    #[error(transparent)]
    State(#[from] StoreError),
}

impl StartError {
    /// Start-up errors need an operator; retrying does not help.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The runner the configuration describes: its audit log opened, fresh metrics, its state
/// in memory (commands; [`open_state`] gives the serving agent its persistent store).
pub fn build_runner(config: &AgentConfig) -> Result<MergeRunner, StartError> {
    let audit = AuditLog::open(&config.audit_log).map_err(|source| StartError::AuditLog {
        path: config.audit_log.clone(),
        source,
    })?;
    let metrics = Arc::new(AgentMetrics::new());
    MergeRunner::new(
        &config.clusters,
        config.policy.clone(),
        Arc::new(audit),
        Arc::clone(&metrics),
        &metrics.webhdfs,
        &config.native,
    )
    .map_err(StartError::Runner)
}

/// Opens the state store in `state_dir` (repairing a file left by a killed agent); hand it
/// to the runner with [`MergeRunner::with_store`] before [`run`], which gives it to the
/// queue. Fails if another agent has it open.
pub fn open_state(
    config: &AgentConfig,
    metrics: Arc<AgentMetrics>,
) -> Result<Arc<RedbStore>, StartError> {
    let store = RedbStore::open(
        &config.state_dir,
        HistoryLimits {
            max_jobs: config.queue.history,
            max_age: config.queue.history_max_age,
        },
        metrics,
    )?;
    tracing::info!(path = %store.path().display(), "State store opened.");
    Ok(Arc::new(store))
}

/// The queue's settings from the configuration file.
pub fn queue_settings(config: &AgentConfig, first_job_id: u64) -> QueueSettings {
    let q = &config.queue;
    QueueSettings {
        capacity: q.capacity,
        capacity_per_cluster: q.cluster_capacity,
        history: q.history,
        history_max_age: q.history_max_age,
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
/// cancelled. Start-up recovery runs first when configured. After the drain, every cluster's
/// filesystem client is closed (WebHDFS delegation tokens cancelled) within
/// [`CLOSE_TIMEOUT`].
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
    let web = options
        .web
        .with_server(config.server.clone(), queue.metrics().web.clone());
    let grace = options.grace;
    let http_grace = options.http_grace;
    let api_settings = ApiSettings {
        bearer_token: config.bearer_token.as_ref().map(|s| s.expose().to_owned()),
        web: web.clone(),
        ..ApiSettings::default()
    };
    let filesystems = runner.filesystems();
    let dyn_runner: Arc<dyn JobRunner> = Arc::clone(&runner) as Arc<dyn JobRunner>;
    let api = ApiState::new(
        api_settings,
        Arc::clone(&queue),
        dyn_runner,
        shutdown.clone(),
    );
    if config.native.recover_on_start {
        api.set_not_ready(Some(
            "start-up recovery of interrupted merges is running".to_owned(),
        ));
    }
    let router = api::router(api.clone());
    if let Ok(local) = listener.local_addr() {
        let scheme = if web.tls_enabled() { "https" } else { "http" };
        tracing::info!(address = %local, audit_log = %config.audit_log.display(), "Listening; webhook at {scheme}://{local}/api/v1/alerts");
    }
    let http = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { web::serve(listener, router, &web, shutdown, http_grace).await }
    });
    // Start-up recovery runs before any job starts; merges it leaves unrecovered are retried
    // in the background (a merge of such a partition recovers it first, under its lock).
    let pending = if config.native.recover_on_start {
        recovery_pass(&runner, &api, "start-up").await
    } else {
        0
    };
    let sweeper = tokio::spawn(sweep(
        Arc::clone(&runner),
        api,
        pending,
        config.native.sweep_interval,
        shutdown.clone(),
    ));
    let workers = tokio::spawn(run_workers(
        Arc::clone(&queue),
        runner as Arc<dyn JobRunner>,
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    tracing::info!(
        ?grace,
        "Shutting down: no new jobs; running jobs stop at their next step boundary."
    );
    if tokio::time::timeout(grace, workers).await.is_err() {
        let ids = queue.abandon_running();
        tracing::warn!(
            jobs = ?ids,
            "Jobs still running after the drain timeout: recorded as shutdown_timeout and queued again; start-up recovery handles their partition at the next start."
        );
    }
    sweeper.abort();
    // After the drain: gives back what the clients hold (WebHDFS delegation tokens).
    close_all(&filesystems, CLOSE_TIMEOUT).await;
    let _ = http.await;
}

/// Longest wait for the filesystem clients to close at shutdown (a dead NameNode must not
/// hold it up).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// First retry of a recovery pass that left merges unrecovered; doubled up to
/// [`RECOVERY_RETRY_MAX`].
const RECOVERY_RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest wait between retries of an incomplete recovery.
const RECOVERY_RETRY_MAX: Duration = Duration::from_secs(300);

/// One recovery pass; `/ready` says whether it left anything unrecovered. Returns how many.
async fn recovery_pass(runner: &MergeRunner, api: &ApiState, what: &str) -> usize {
    let results = runner.recover_all().await;
    let unrecovered = results.iter().filter(|r| r.error.is_some()).count();
    if unrecovered == 0 {
        tracing::info!(merge_dirs = results.len(), "Recovery ({what}) done.");
        api.set_not_ready(None);
    } else {
        tracing::error!(
            unrecovered,
            "Recovery ({what}) left interrupted merges unrecovered (see the errors above); /ready stays false and recovery is retried."
        );
        api.set_not_ready(Some(format!(
            "{unrecovered} interrupted merge(s) not recovered yet; retrying"
        )));
    }
    unrecovered
}

/// Recovery after start-up: retried with backoff while merges stay unrecovered, otherwise a
/// sweep every `every` (expired backups, abandoned staging, merges interrupted since).
async fn sweep(
    runner: Arc<MergeRunner>,
    api: ApiState,
    mut pending: usize,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut retry = RECOVERY_RETRY_FIRST;
    loop {
        let wait = if pending > 0 { retry.min(every) } else { every };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        pending = recovery_pass(&runner, &api, if pending > 0 { "retry" } else { "sweep" }).await;
        retry = if pending > 0 {
            (retry * 2).min(RECOVERY_RETRY_MAX)
        } else {
            RECOVERY_RETRY_FIRST
        };
    }
}
