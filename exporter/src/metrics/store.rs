//! The latest snapshot of every cluster with what `/metrics` derives from it once per
//! publication (never per scrape): which tables get per-table series, the per-database
//! rollups, and the number of samples the cluster's families expose.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;

use super::SnapshotCollector;
use super::rollups::{DatabaseRollup, database_rollups};
use super::selection::select;
use crate::config::{ClusterConfig, SeriesConfig};
use crate::shard::Shard;
use crate::snapshot::ClusterSnapshot;

/// How a cluster's snapshots are exported: its `[cluster.series]` and its shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSettings {
    /// Which tables get per-table series.
    pub series: SeriesConfig,
    /// This replica's share of the tables (the rollups' `shard` label); `None`: all.
    pub shard: Option<Shard>,
}

impl ExportSettings {
    /// The settings of a configured cluster.
    pub fn of(config: &ClusterConfig) -> Self {
        Self {
            series: config.series,
            shard: config.shard,
        }
    }
}

/// A published snapshot and what is derived from it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The snapshot.
    pub snapshot: Arc<ClusterSnapshot>,
    /// Indices (ascending) of the tables with per-table series.
    pub selected: Vec<usize>,
    /// Rollups per database over every table.
    pub databases: Vec<DatabaseRollup>,
    /// The `shard` label, `"i/n"` (`"0/1"` unsharded).
    pub shard: String,
    /// Whether `hive_table_info` carries `location`.
    pub location_label: bool,
    /// Samples of the cluster's snapshot families (`hive_exporter_series`; the three
    /// `hive_exporter_series/tables_*` samples themselves not counted).
    pub series: u64,
}

impl Published {
    /// Derives everything from the snapshot.
    pub fn new(snapshot: Arc<ClusterSnapshot>, settings: ExportSettings) -> Self {
        let mut p = Self {
            selected: select(&snapshot.tables, &settings.series),
            databases: database_rollups(&snapshot.tables),
            shard: settings
                .shard
                .map_or_else(|| "0/1".to_owned(), |s| s.to_string()),
            location_label: settings.series.location_label,
            snapshot,
            series: 0,
        };
        p.series = count_samples(&p);
        p
    }

    /// Scanned tables without per-table series.
    pub fn omitted(&self) -> usize {
        self.snapshot.tables.len() - self.selected.len()
    }
}

/// Encodes the cluster's families alone into a sink that only counts sample lines: exact by
/// construction, once per publication, without holding the text.
fn count_samples(p: &Published) -> u64 {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector {
        store: SnapshotStore::default(),
        fixed: Some(vec![Arc::new(p.clone())]),
    }));
    let mut sink = SampleCounter::default();
    // The sink never fails.
    let _ = prometheus_client::encoding::text::encode(&mut sink, &registry);
    // The three self-metric samples of this cluster are not counted.
    sink.samples.saturating_sub(SELF_SAMPLES)
}

/// `hive_exporter_series`, `_tables_exported`, `_tables_omitted`: one sample each per cluster.
const SELF_SAMPLES: u64 = 3;

/// Counts the lines of OpenMetrics text that are samples (not `#` comments).
#[derive(Debug)]
struct SampleCounter {
    samples: u64,
    /// Whether the next byte starts a line.
    line_start: bool,
}

impl Default for SampleCounter {
    fn default() -> Self {
        Self {
            samples: 0,
            line_start: true,
        }
    }
}

impl std::fmt::Write for SampleCounter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for b in s.bytes() {
            if self.line_start && b != b'#' && b != b'\n' {
                self.samples += 1;
            }
            self.line_start = b == b'\n';
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Inner {
    settings: BTreeMap<String, ExportSettings>,
    published: BTreeMap<String, Arc<Published>>,
}

/// The latest snapshot of every cluster, swapped whole after each scan.
#[derive(Debug, Clone, Default)]
pub struct SnapshotStore {
    inner: Arc<RwLock<Inner>>,
}

impl SnapshotStore {
    /// Sets how a cluster's snapshots are exported (default: [`ExportSettings::default`]);
    /// applies from its next publication.
    pub fn configure(&self, cluster: &str, settings: ExportSettings) {
        let mut g = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.settings.insert(cluster.to_owned(), settings);
    }

    /// Publishes a cluster's new snapshot, selecting its tables and rolling it up (outside
    /// the lock: scrapes keep reading the previous one meanwhile).
    pub fn publish(&self, snapshot: Arc<ClusterSnapshot>) {
        let settings = {
            let g = self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            g.settings
                .get(&snapshot.cluster)
                .copied()
                .unwrap_or_default()
        };
        let published = Arc::new(Published::new(snapshot, settings));
        let mut g = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.published
            .insert(published.snapshot.cluster.clone(), published);
    }

    /// All current snapshots, ordered by cluster name.
    pub fn all(&self) -> Vec<Arc<ClusterSnapshot>> {
        self.published()
            .into_iter()
            .map(|p| Arc::clone(&p.snapshot))
            .collect()
    }

    /// All current publications, ordered by cluster name.
    pub fn published(&self) -> Vec<Arc<Published>> {
        let g = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.published.values().cloned().collect()
    }

    /// Whether every registered cluster has numbers to serve: a successful scan since start.
    /// A later failed scan (MetaStore down, every NameNode down) keeps its cluster ready: the
    /// previous numbers are still served, and the failure shows in `hive_scan_success`.
    pub fn all_ready(&self) -> bool {
        let g = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !g.published.is_empty()
            && g.published
                .values()
                .all(|p| p.snapshot.last_success_unix.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::SampleCounter;

    #[test]
    fn counts_sample_lines_across_writes() {
        let mut c = SampleCounter::default();
        for piece in [
            "# HELP a x\n# TY",
            "PE a gauge\na{l=\"",
            "#\\n\"} 1\n",
            "a 2\n",
            "\n# EOF\n",
        ] {
            c.write_str(piece).unwrap();
        }
        assert_eq!(c.samples, 2);
    }
}
