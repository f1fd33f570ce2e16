//! The agent's metrics (`hive_merge_` prefix), registered once and shared by every stage.
//! Rendering reuses the exporter's format negotiation and 0.0.4 conversion.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use hive_smallfiles_core::exposition::{Format, openmetrics_to_text};
use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;
use hive_smallfiles_core::web::WebMetrics;

/// `{status}` label set (alert status: firing, resolved).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Alert status.
    pub status: String,
}

/// `{code}` label set (HTTP status code).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// HTTP status code.
    pub code: String,
}

/// `{result, strategy}` label set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Job result (`merged`, `dry_run`, `skipped`, `failed`).
    pub result: String,
    /// Strategy (`insert_overwrite`, `concatenate`, `compact_major`, `none`).
    pub strategy: String,
}

/// `{cluster}` label set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Cluster name.
    pub cluster: String,
}

/// `{reason}` label set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Bounded reason label.
    pub reason: String,
}

/// `{limit}` label set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Which limit (`global_rate`, `cluster_rate`, `bytes`, `concurrency`).
    pub limit: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    ])
}

/// Every metric of the agent.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    /// Alerts received by status.
    pub alerts_received: Family<StatusLabels, Counter>,
    /// Webhook requests by answered HTTP code.
    pub webhook_requests: Family<CodeLabels, Counter>,
    /// Jobs waiting.
    pub jobs_queued: Gauge,
    /// Jobs running.
    pub jobs_running: Gauge,
    /// Finished jobs by result and strategy.
    pub jobs: Family<JobLabels, Counter>,
    /// Job durations by result and strategy.
    pub job_duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    /// Files removed by merges.
    pub files_removed: Family<ClusterLabels, Counter>,
    /// Bytes rewritten by merges.
    pub bytes_rewritten: Family<ClusterLabels, Counter>,
    /// Times a job had to wait for a limit.
    pub rate_limited: Family<LimitLabels, Counter>,
    /// Requests skipped by policy, by reason.
    pub policy_skipped: Family<ReasonLabels, Counter>,
    /// `hive_merge_staged_failures_total{reason}`: native / engine-staged merges of a
    /// partition that stopped (refused, aborted by a concurrent change, verification...).
    pub native_failures: Family<ReasonLabels, Counter>,
    /// `hive_merge_recovery_actions_total{reason}`: what recovery did with merge directories.
    pub recovered: Family<ReasonLabels, Counter>,
    /// Work items not queued, by reason (`cooldown`, `queue_full`, `invalid_labels`...).
    pub intake_dropped: Family<ReasonLabels, Counter>,
    /// `hive_merge_recovery_unrecovered`: merge directories (or whole clusters) the last
    /// recovery pass could not bring to a consistent state.
    pub unrecovered: Gauge,
    /// `hive_merge_recovery_last_run_timestamp_seconds`: when the last recovery pass ended.
    pub recovery_last_run: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `hive_merge_state_store_errors_total`: writes or reads of the agent's state store that
    /// failed (the queue carries on in memory; see the log).
    pub state_store_errors: Counter,
    /// The HTTP server's connections, timeouts and authentication (`hive_merge_http_*`).
    pub web: WebMetrics,
    /// The WebHDFS clients' metrics; the Kerberos ones are registered, unprefixed, as the
    /// exporter's (`hive_hdfs_authentications_total`,
    /// `hive_hdfs_delegation_token_expiry_timestamp_seconds`).
    pub webhdfs: WebHdfsMetrics,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// Registers everything.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let webhdfs = WebHdfsMetrics::default();
        webhdfs.register_shared(&mut root);
        let registry = root.sub_registry_with_prefix("hive_merge");
        let m = Self {
            registry: Registry::default(),
            alerts_received: Family::default(),
            webhook_requests: Family::default(),
            jobs_queued: Gauge::default(),
            jobs_running: Gauge::default(),
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(duration_histogram),
            files_removed: Family::default(),
            bytes_rewritten: Family::default(),
            rate_limited: Family::default(),
            policy_skipped: Family::default(),
            native_failures: Family::default(),
            recovered: Family::default(),
            intake_dropped: Family::default(),
            unrecovered: Gauge::default(),
            recovery_last_run: Gauge::default(),
            state_store_errors: Counter::default(),
            web: WebMetrics::default(),
            webhdfs,
        };
        registry.register(
            "agent_build",
            "Build information of the merge agent",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "alerts_received",
            "Alerts received by status",
            m.alerts_received.clone(),
        );
        registry.register(
            "webhook_requests",
            "Webhook requests by answered HTTP status code",
            m.webhook_requests.clone(),
        );
        registry.register(
            "jobs_queued",
            "Jobs waiting in the queue",
            m.jobs_queued.clone(),
        );
        registry.register(
            "jobs_running",
            "Jobs being planned or executed",
            m.jobs_running.clone(),
        );
        registry.register(
            "jobs",
            "Finished jobs by result and strategy",
            m.jobs.clone(),
        );
        registry.register_with_unit(
            "job_duration",
            "Duration of finished jobs",
            prometheus_client::registry::Unit::Seconds,
            m.job_duration.clone(),
        );
        registry.register(
            "files_removed",
            "Files removed by merges",
            m.files_removed.clone(),
        );
        registry.register_with_unit(
            "rewritten",
            "Bytes rewritten by merges",
            prometheus_client::registry::Unit::Bytes,
            m.bytes_rewritten.clone(),
        );
        registry.register(
            "rate_limited",
            "Times a job waited for a limit, by limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "policy_skipped",
            "Merge requests skipped by policy, by reason",
            m.policy_skipped.clone(),
        );
        registry.register(
            "staged_failures",
            "Native or engine-staged partition merges that stopped, by reason (refused, aborted by a concurrent change, verification failed...)",
            m.native_failures.clone(),
        );
        registry.register(
            "recovery_actions",
            "What recovery did with merge directories, by action",
            m.recovered.clone(),
        );
        registry.register(
            "state_store_errors",
            "Failed reads or writes of the agent's state store",
            m.state_store_errors.clone(),
        );
        registry.register(
            "intake_dropped",
            "Work items not queued, by reason",
            m.intake_dropped.clone(),
        );
        registry.register(
            "recovery_unrecovered",
            "Interrupted merges (or clusters) the last recovery pass could not bring to a consistent state",
            m.unrecovered.clone(),
        );
        registry.register_with_unit(
            "recovery_last_run_timestamp",
            "When the last recovery pass ended",
            prometheus_client::registry::Unit::Seconds,
            m.recovery_last_run.clone(),
        );
        m.web.register(registry);
        hive_smallfiles_core::kerberos::metrics::register(registry);
        hive_smallfiles_core::secret::metrics::register(registry);
        Self {
            registry: root,
            ..m
        }
    }

    /// Renders everything in the given format.
    pub fn render(&self, format: Format) -> String {
        let mut om = String::with_capacity(8192);
        let _ = prometheus_client::encoding::text::encode(&mut om, &self.registry);
        match format {
            Format::OpenMetrics => om,
            Format::Text => openmetrics_to_text(&om),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_conventions() {
        let m = AgentMetrics::new();
        m.jobs
            .get_or_create(&JobLabels {
                result: "merged".into(),
                strategy: "insert_overwrite".into(),
            })
            .inc();
        m.job_duration
            .get_or_create(&JobLabels {
                result: "merged".into(),
                strategy: "insert_overwrite".into(),
            })
            .observe(3.0);
        m.bytes_rewritten
            .get_or_create(&ClusterLabels {
                cluster: "c".into(),
            })
            .inc_by(10);
        let text = m.render(Format::Text);
        assert!(
            text.contains("# TYPE hive_merge_jobs_total counter"),
            "{text}"
        );
        assert!(
            text.contains("hive_merge_job_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(
            text.contains("hive_merge_rewritten_bytes_total{cluster=\"c\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("hive_merge_agent_build_info{version="),
            "{text}"
        );
    }

    #[test]
    fn registers_the_webhdfs_kerberos_metrics_unprefixed() {
        let m = AgentMetrics::new();
        m.webhdfs
            .authentications
            .get_or_create(&hive_smallfiles_core::fs::webhdfs::AuthLabels {
                cluster: "c".into(),
                event: "token_obtained".into(),
            })
            .inc();
        m.webhdfs
            .token_expiry
            .get_or_create(&hive_smallfiles_core::fs::webhdfs::ClusterLabels {
                cluster: "c".into(),
            })
            .set(1_700_000_000);
        let text = m.render(Format::Text);
        for line in [
            "# TYPE hive_hdfs_authentications_total counter",
            "hive_hdfs_authentications_total{cluster=\"c\",event=\"token_obtained\"} 1",
            "# TYPE hive_hdfs_delegation_token_expiry_timestamp_seconds gauge",
            "hive_hdfs_delegation_token_expiry_timestamp_seconds{cluster=\"c\"} 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("hive_merge_hive_hdfs"), "{text}");
    }
}
