//! Everything `/metrics` shows: the last snapshot of every cluster (encoded on scrape by a
//! prometheus-client [`Collector`], never triggering I/O) and live process counters.
//!
//! prometheus-client writes OpenMetrics 1.0; Prometheus text 0.0.4 (what a scraper gets
//! unless it asks for OpenMetrics) is derived by `openmetrics_to_text` (the core's `exposition`): counter and info
//! families take their sample names in `# TYPE`/`# HELP`, info becomes gauge, `# UNIT` and
//! `# EOF` go. Both formats describe the same samples.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

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
use hive_smallfiles_core::walk::counts::SizeClass;
use hive_smallfiles_core::web::WebMetrics;

use crate::snapshot::ClusterSnapshot;

/// The latest snapshot of every cluster, swapped whole after each scan.
#[derive(Debug, Clone, Default)]
pub struct SnapshotStore {
    inner: Arc<RwLock<BTreeMap<String, Arc<ClusterSnapshot>>>>,
}

impl SnapshotStore {
    /// Publishes a cluster's new snapshot.
    pub fn publish(&self, snapshot: Arc<ClusterSnapshot>) {
        let mut g = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.insert(snapshot.cluster.clone(), snapshot);
    }

    /// All current snapshots, ordered by cluster name.
    pub fn all(&self) -> Vec<Arc<ClusterSnapshot>> {
        let g = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.values().cloned().collect()
    }

    /// Whether every registered cluster has numbers to serve: a successful scan since start.
    /// A later failed scan (MetaStore down, every NameNode down) keeps its cluster ready: the
    /// previous numbers are still served, and the failure shows in `hive_scan_success`.
    pub fn all_ready(&self) -> bool {
        let g = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !g.is_empty() && g.values().all(|s| s.last_success_unix.is_some())
    }
}

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
        webhdfs.register_authentication(&mut registry);
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
}

/// An empty label set (labels of info samples travel in the info itself).
const NO_LABELS: [(&str, &str); 0] = [];

type TableLabels<'a> = [(&'static str, &'a str); 3];

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

/// Selects a by-reason count map of a snapshot.
type ByReason = fn(&ClusterSnapshot) -> &BTreeMap<&'static str, u64>;

/// Counts as integer gauge values (`3`, not `3.0`).
fn f(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snaps = self.store.all();
        let tables = || {
            snaps.iter().flat_map(|s| {
                s.tables.iter().map(move |t| {
                    let labels: TableLabels<'_> = [
                        ("cluster", s.cluster.as_str()),
                        ("database", t.database.as_str()),
                        ("table", t.table.as_str()),
                    ];
                    (labels, t)
                })
            })
        };
        let e = &mut encoder;
        gauge_family(
            e,
            "hive_table_files",
            "Visible files in the table's partition directories",
            tables().map(|(l, t)| (l, f(t.counts.files))),
        )?;
        gauge_family(
            e,
            "hive_table_small_files",
            "Files smaller than the cluster's small-file threshold (empty files included)",
            tables().map(|(l, t)| (l, f(t.counts.small_files))),
        )?;
        gauge_family(
            e,
            "hive_table_empty_files",
            "Zero-length files",
            tables().map(|(l, t)| (l, f(t.counts.empty_files))),
        )?;
        gauge_family(
            e,
            "hive_table_size_bytes",
            "Logical size of the table's files in bytes, without replication",
            tables().map(|(l, t)| (l, f(t.counts.bytes))),
        )?;
        gauge_family(
            e,
            "hive_table_partitions",
            "Partitions in the MetaStore (0 for unpartitioned tables)",
            tables().map(|(l, t)| (l, f(t.partitions))),
        )?;
        gauge_family(
            e,
            "hive_table_excess_files",
            "Files a perfect merge would remove: sum over partitions of max(0, files - ceil(bytes / target_file_bytes))",
            tables().map(|(l, t)| (l, f(t.excess_files))),
        )?;
        gauge_family(
            e,
            "hive_table_missing_directories",
            "Partitions (or the table) whose directory does not exist",
            tables().map(|(l, t)| (l, f(t.missing_directories))),
        )?;
        gauge_family(
            e,
            "hive_table_unreferenced_files",
            "Visible files below a partitioned table's location that no partition points at (unregistered or abandoned partition directories, stray files); absent when not looked at",
            tables().filter_map(|(l, t)| t.unreferenced.map(|u| (l, f(u.files)))),
        )?;
        gauge_family(
            e,
            "hive_table_unreferenced_bytes",
            "Logical size of the unreferenced files in bytes, without replication",
            tables().filter_map(|(l, t)| t.unreferenced.map(|u| (l, f(u.bytes)))),
        )?;
        gauge_family(
            e,
            "hive_table_unreferenced_directories",
            "Outermost directories below a partitioned table's location that no partition points at",
            tables().filter_map(|(l, t)| t.unreferenced.map(|u| (l, f(u.directories)))),
        )?;
        #[allow(clippy::cast_precision_loss)]
        gauge_family(
            e,
            "hive_table_newest_file_timestamp_seconds",
            "Newest file modification time (Unix seconds); absent for tables without files",
            tables()
                .filter(|(_, t)| t.counts.files > 0)
                .map(|(l, t)| (l, t.counts.newest_modification_ms as f64 / 1000.0)),
        )?;
        #[allow(clippy::cast_precision_loss)]
        gauge_family(
            e,
            "hive_table_last_access_timestamp_seconds",
            "Newest HDFS access time of the table's files (Unix seconds); absent when access times are not tracked",
            tables()
                .filter(|(_, t)| t.counts.newest_access_ms > 0)
                .map(|(l, t)| (l, t.counts.newest_access_ms as f64 / 1000.0)),
        )?;
        if snaps.iter().any(|s| !s.tables.is_empty()) {
            let mut family = e.encode_descriptor(
                "hive_table",
                "Table properties: format, compression, table type, transactional kind, location",
                None,
                MetricType::Info,
            )?;
            for ([cluster, database, table], t) in tables() {
                let info = Info::new([
                    cluster,
                    database,
                    table,
                    ("format", t.format),
                    ("compression", t.compression.as_str()),
                    ("table_type", t.table_type),
                    ("transactional", t.transactional),
                    ("location", t.location.as_str()),
                ]);
                info.encode(family.encode_family(&NO_LABELS)?)?;
            }
        }

        // Per database: files by size class.
        let mut by_db: BTreeMap<(&str, &str), [u64; 6]> = BTreeMap::new();
        for s in &snaps {
            for t in &s.tables {
                let e = by_db
                    .entry((s.cluster.as_str(), t.database.as_str()))
                    .or_default();
                for (a, b) in e.iter_mut().zip(t.counts.size_classes) {
                    *a += b;
                }
            }
        }
        gauge_family(
            e,
            "hive_database_files_by_size_class",
            "Files per fixed size class (empty, under 1 MiB, 16 MiB, 64 MiB, under the small threshold, at or over it)",
            by_db.iter().flat_map(|((c, d), classes)| {
                SizeClass::ALL.iter().map(move |class| {
                    (
                        [
                            ("cluster", *c),
                            ("database", *d),
                            ("size_class", class.as_str()),
                        ],
                        f(classes[*class as usize]),
                    )
                })
            }),
        )?;

        // Per cluster.
        let cl = |s: &ClusterSnapshot| [("cluster", s.cluster.clone())];
        gauge_family(
            e,
            "hive_cluster_small_file_threshold_bytes",
            "Files smaller than this are small",
            snaps.iter().map(|s| (cl(s), f(s.small_file_bytes))),
        )?;
        gauge_family(
            e,
            "hive_cluster_target_file_bytes",
            "Target size of a merged file",
            snaps.iter().map(|s| (cl(s), f(s.target_file_bytes))),
        )?;
        gauge_family(
            e,
            "hive_cluster_scan_interval_seconds",
            "Configured time between scan starts",
            snaps.iter().map(|s| (cl(s), s.scan_interval_seconds)),
        )?;
        gauge_family(
            e,
            "hive_scan_duration_seconds",
            "Duration of the last scan",
            snaps
                .iter()
                .filter(|s| s.scan.started_unix > 0.0)
                .map(|s| (cl(s), s.scan.duration_seconds)),
        )?;
        gauge_family(
            e,
            "hive_scan_success",
            "Whether the last scan completed and listed tables (1) or failed (0): a MetaStore error, the timeout, or no table listable",
            snaps
                .iter()
                .filter(|s| s.scan.started_unix > 0.0)
                .map(|s| (cl(s), f(u64::from(s.scan.success)))),
        )?;
        gauge_family(
            e,
            "hive_scan_last_success_timestamp_seconds",
            "End of the last successful scan (Unix seconds)",
            snaps
                .iter()
                .filter_map(|s| s.last_success_unix.map(|t| (cl(s), t))),
        )?;
        gauge_family(
            e,
            "hive_scan_tables",
            "Tables of the last completed scan by result",
            snaps.iter().filter(|s| s.completed_once).flat_map(|s| {
                let r = s.scan.tables;
                [
                    ("scanned", r.scanned),
                    ("skipped", r.skipped),
                    ("failed", r.failed),
                    ("filtered", r.filtered),
                ]
                .map(|(k, v)| {
                    (
                        [("cluster", s.cluster.clone()), ("result", k.to_owned())],
                        f(v),
                    )
                })
            }),
        )?;
        gauge_family(
            e,
            "hive_scan_failed_tables_ratio",
            "Share of the tables the last completed scan tried to list whose listing failed (0-1)",
            snaps
                .iter()
                .filter(|s| s.completed_once)
                .map(|s| (cl(s), s.scan.failed_tables_ratio())),
        )?;
        for (name, help, select) in [
            (
                "hive_scan_skipped_tables",
                "Tables not listed in the last completed scan by reason",
                (|s: &ClusterSnapshot| &s.scan.skipped_by_reason) as ByReason,
            ),
            (
                "hive_scan_filtered_tables",
                "Tables the last completed scan left out by configuration, by reason (glob: include/exclude, catalog: a Hive 3 catalog not configured, materialized_view: materialized_views = false)",
                |s: &ClusterSnapshot| &s.scan.filtered_by_reason,
            ),
        ] {
            gauge_family(
                e,
                name,
                help,
                snaps.iter().filter(|s| s.completed_once).flat_map(|s| {
                    select(s).iter().map(|(k, v)| {
                        (
                            [("cluster", s.cluster.clone()), ("reason", (*k).to_owned())],
                            f(*v),
                        )
                    })
                }),
            )?;
        }
        gauge_family(
            e,
            "hive_scan_partitions",
            "Partition directories of the last completed scan by result",
            snaps.iter().filter(|s| s.completed_once).flat_map(|s| {
                let r = s.scan.partitions;
                [
                    ("listed", r.listed),
                    ("missing", r.missing),
                    ("skipped", r.skipped),
                    ("failed", r.failed),
                ]
                .map(|(k, v)| {
                    (
                        [("cluster", s.cluster.clone()), ("result", k.to_owned())],
                        f(v),
                    )
                })
            }),
        )?;
        gauge_family(
            e,
            "hive_scan_listings",
            "Directory listings made by the last completed scan",
            snaps
                .iter()
                .filter(|s| s.completed_once)
                .map(|s| (cl(s), f(s.scan.listings))),
        )?;
        gauge_family(
            e,
            "hive_scan_reused_directories",
            "Directories the last completed scan reused from the previous one without a request",
            snaps
                .iter()
                .filter(|s| s.completed_once)
                .map(|s| (cl(s), f(s.scan.reused_directories))),
        )?;
        gauge_family(
            e,
            "hive_scan_unreferenced_listings",
            "Directory listings the last completed scan made to find unreferenced files (included in hive_scan_listings)",
            snaps
                .iter()
                .filter(|s| s.completed_once)
                .map(|s| (cl(s), f(s.scan.unreferenced_listings))),
        )?;
        gauge_family(
            e,
            "hive_metastore_up",
            "Whether the MetaStore database answered during the last scan",
            snaps
                .iter()
                .filter(|s| s.scan.started_unix > 0.0)
                .map(|s| (cl(s), f(u64::from(s.scan.metastore_up)))),
        )?;
        if snaps.iter().any(|s| s.schema.is_some()) {
            let mut family = e.encode_descriptor(
                "hive_metastore",
                "MetaStore schema as probed",
                None,
                MetricType::Info,
            )?;
            for s in &snaps {
                let Some(schema) = &s.schema else { continue };
                let info = Info::new([
                    ("cluster", s.cluster.as_str()),
                    (
                        "schema_version",
                        schema.schema_version.as_deref().unwrap_or("unknown"),
                    ),
                    (
                        "distribution_version",
                        schema.distribution_version.as_deref().unwrap_or(""),
                    ),
                    (
                        "catalogs",
                        if schema.has_catalogs { "true" } else { "false" },
                    ),
                ]);
                info.encode(family.encode_family(&NO_LABELS)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ColdCounts, ScanSummary, TableResults, TableStats, Unreferenced};
    use hive_smallfiles_core::walk::counts::FileCounts;

    pub(crate) fn sample_snapshot() -> ClusterSnapshot {
        let mut counts = FileCounts::default();
        counts.add_file(0, 1_700_000_000_000, 0, 100);
        counts.add_file(10, 1_700_000_001_500, 1_700_000_002_000, 100);
        counts.add_file(1000, 1_700_000_000_000, 0, 100);
        ClusterSnapshot {
            cluster: "prod".into(),
            small_file_bytes: 100,
            target_file_bytes: 1000,
            tables: vec![
                TableStats {
                    catalog: "hive".into(),
                    database: "sales".into(),
                    table: "we\"ird \\ name\nx".into(),
                    format: "text",
                    compression: "none".into(),
                    table_type: "external",
                    transactional: "false",
                    location: "hdfs://ns/w/t".into(),
                    partitions: 2,
                    counts,
                    excess_files: 2,
                    missing_directories: 0,
                    unreferenced: Some(Unreferenced {
                        directories: 2,
                        files: 5,
                        bytes: 1234,
                    }),
                    cold: ColdCounts::default(),
                },
                TableStats {
                    catalog: "hive".into(),
                    database: "sales".into(),
                    table: "empty".into(),
                    format: "orc",
                    compression: "unknown".into(),
                    table_type: "managed",
                    transactional: "full",
                    location: "hdfs://ns/w/e".into(),
                    partitions: 0,
                    counts: FileCounts::default(),
                    excess_files: 0,
                    missing_directories: 1,
                    unreferenced: None,
                    cold: ColdCounts::default(),
                },
            ],
            scan: ScanSummary {
                started_unix: 1_700_000_100.0,
                duration_seconds: 1.5,
                success: true,
                metastore_up: true,
                tables: TableResults {
                    scanned: 2,
                    skipped: 1,
                    failed: 0,
                    filtered: 3,
                },
                unreferenced_listings: 4,
                ..ScanSummary::default()
            },
            last_success_unix: Some(1_700_000_101.5),
            completed_once: true,
            ..ClusterSnapshot::default()
        }
    }

    #[test]
    fn renders_both_formats() {
        let m = Metrics::new();
        m.snapshots.publish(Arc::new(sample_snapshot()));
        let text = m.render(Format::Text);
        assert!(text.contains("# TYPE hive_table_files gauge\n"), "{text}");
        assert!(text.contains(
            "hive_table_files{cluster=\"prod\",database=\"sales\",table=\"we\\\"ird \\\\ name\\nx\"} 3\n"
        ));
        assert!(text.contains("hive_table_newest_file_timestamp_seconds{cluster=\"prod\",database=\"sales\",table=\"we\\\"ird \\\\ name\\nx\"} 1700000001.5\n"));
        assert!(!text.contains("hive_table_newest_file_timestamp_seconds{cluster=\"prod\",database=\"sales\",table=\"empty\"}"));
        assert!(text.contains("# TYPE hive_table_info gauge\n"));
        assert!(text.contains("# TYPE hive_exporter_build_info gauge\n"));
        assert!(text.contains("hive_scan_tables{cluster=\"prod\",result=\"filtered\"} 3\n"));
        assert!(text.contains("hive_scan_unreferenced_listings{cluster=\"prod\"} 4\n"));
        for (name, v) in [("files", 5), ("bytes", 1234), ("directories", 2)] {
            assert!(
                text.contains(&format!("# TYPE hive_table_unreferenced_{name} gauge\n")),
                "{name}"
            );
            assert!(
                text.contains(&format!("hive_table_unreferenced_{name}{{cluster=\"prod\",database=\"sales\",table=\"we\\\"ird \\\\ name\\nx\"}} {v}\n")),
                "{name}: {text}"
            );
            // Not looked at: no sample rather than a 0.
            assert!(!text.contains(&format!(
                "hive_table_unreferenced_{name}{{cluster=\"prod\",database=\"sales\",table=\"empty\"}}"
            )));
        }
        assert!(text.contains("hive_database_files_by_size_class{cluster=\"prod\",database=\"sales\",size_class=\"empty\"} 1\n"));
        assert!(!text.contains("# EOF"));
        let om = m.render(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE hive_table info\n"));
    }

    #[test]
    fn negotiation() {
        let prom = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
    }
}
