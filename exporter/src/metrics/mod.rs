//! Everything `/metrics` shows: the last snapshot of every cluster (encoded on scrape by a
//! prometheus-client [`Collector`], never triggering I/O) and live process counters.
//!
//! prometheus-client writes OpenMetrics 1.0; Prometheus text 0.0.4 (what a scraper gets
//! unless it asks for OpenMetrics) is derived by `openmetrics_to_text` (the core's `exposition`): counter and info
//! families take their sample names in `# TYPE`/`# HELP`, info becomes gauge, `# UNIT` and
//! `# EOF` go. Both formats describe the same samples.
//!
//! The snapshot families live in submodules: [`tables`] (per table, for the tables
//! [`selection`] keeps), [`rollups`] (per database, over every table), [`partitions`] (the
//! worst partitions), [`cluster`] (per cluster); [`store`] holds the snapshots with what is
//! derived from them once per publication.

pub mod cluster;
pub mod partitions;
pub mod rollups;
pub mod selection;
pub mod store;
pub mod tables;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use hive_smallfiles_core::exposition::{Format, openmetrics_to_text};
use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;
use hive_smallfiles_core::web::WebMetrics;

pub use store::{ExportSettings, Published, SnapshotStore};

/// Labels of `hive_scans_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScanLabels {
    /// Cluster name.
    pub cluster: String,
    /// `success`, `partial` (some tables failed) or `failure`.
    pub result: String,
}

/// The exporter's registry and live metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Snapshots rendered on every scrape.
    pub snapshots: SnapshotStore,
    /// WebHDFS request counters and NameNode health, shared by all clusters' clients.
    pub webhdfs: WebHdfsMetrics,
    /// Completed scans by result.
    pub scans: Family<ScanLabels, Counter>,
    /// The HTTP server's connections, timeouts and authentication (`hive_exporter_http_*`).
    pub web: WebMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let snapshots = SnapshotStore::default();
        let webhdfs = WebHdfsMetrics::default();
        let scans = Family::<ScanLabels, Counter>::default();
        registry.register(
            "hive_exporter_build",
            "Build information of the exporter",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "revision",
                    option_env!("HIVE_SMALLFILES_REVISION").unwrap_or("unknown"),
                ),
            ]),
        );
        registry.register(
            "hive_hdfs_requests",
            "WebHDFS requests by operation and HTTP status code (error when no response)",
            webhdfs.requests.clone(),
        );
        registry.register(
            "hive_hdfs_up",
            "Whether the NameNode answered its last WebHDFS request (1) or not (0)",
            webhdfs.up.clone(),
        );
        webhdfs.register_shared(&mut registry);
        registry.register("hive_scans", "Completed scans by result", scans.clone());
        let web = WebMetrics::default();
        web.register(registry.sub_registry_with_prefix("hive_exporter"));
        hive_smallfiles_core::kerberos::metrics::register(
            registry.sub_registry_with_prefix("hive_exporter"),
        );
        hive_smallfiles_core::secret::metrics::register(
            registry.sub_registry_with_prefix("hive_exporter"),
        );
        registry.register_collector(Box::new(SnapshotCollector {
            store: snapshots.clone(),
            fixed: None,
        }));
        Self {
            registry,
            snapshots,
            webhdfs,
            scans,
            web,
        }
    }

    /// Renders everything in the given format.
    pub fn render(&self, format: Format) -> String {
        let mut om = String::with_capacity(1 << 16);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut om, &self.registry);
        match format {
            Format::OpenMetrics => om,
            Format::Text => openmetrics_to_text(&om),
        }
    }
}

/// Encodes the snapshots on every scrape (no I/O: they are in memory).
#[derive(Debug)]
struct SnapshotCollector {
    store: SnapshotStore,
    /// Publications to encode instead of the store's (counting one cluster's samples).
    fixed: Option<Vec<std::sync::Arc<Published>>>,
}

/// An empty label set (labels of info samples travel in the info itself).
const NO_LABELS: [(&str, &str); 0] = [];

fn gauge_family<I, L, V>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: I,
) -> Result<(), std::fmt::Error>
where
    I: IntoIterator<Item = (L, V)>,
    L: EncodeLabelSet,
    V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static,
{
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Counts as integer gauge values (`3`, not `3.0`).
fn f(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let pubs = match &self.fixed {
            Some(fixed) => fixed.clone(),
            None => self.store.published(),
        };
        tables::encode(&mut encoder, &pubs)?;
        rollups::encode(&mut encoder, &pubs)?;
        partitions::encode(&mut encoder, &pubs)?;
        cluster::encode(&mut encoder, &pubs)
    }
}

#[cfg(test)]
mod tests;
