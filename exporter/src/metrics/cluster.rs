//! Per-cluster families: configuration, the last scan, the MetaStore, and the exporter's own
//! view of its cardinality (`hive_exporter_series`, `hive_exporter_tables_exported/omitted`).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;

use super::store::Published;
use super::{NO_LABELS, f, gauge_family};
use crate::snapshot::ClusterSnapshot;

/// Selects a by-reason count map of a snapshot.
type ByReason = fn(&ClusterSnapshot) -> &BTreeMap<&'static str, u64>;

/// Encodes the per-cluster families of every published cluster.
pub(super) fn encode(
    e: &mut DescriptorEncoder<'_>,
    pubs: &[Arc<Published>],
) -> Result<(), std::fmt::Error> {
    let snaps = || pubs.iter().map(|p| &*p.snapshot);
    let cl = |s: &ClusterSnapshot| [("cluster", s.cluster.clone())];
    gauge_family(
        e,
        "hive_cluster_small_file_threshold_bytes",
        "Files smaller than this are small",
        snaps().map(|s| (cl(s), f(s.small_file_bytes))),
    )?;
    gauge_family(
        e,
        "hive_cluster_target_file_bytes",
        "Target size of a merged file",
        snaps().map(|s| (cl(s), f(s.target_file_bytes))),
    )?;
    gauge_family(
        e,
        "hive_cluster_scan_interval_seconds",
        "Configured time between scan starts",
        snaps().map(|s| (cl(s), s.scan_interval_seconds)),
    )?;
    gauge_family(
        e,
        "hive_scan_duration_seconds",
        "Duration of the last scan",
        snaps()
            .filter(|s| s.scan.started_unix > 0.0)
            .map(|s| (cl(s), s.scan.duration_seconds)),
    )?;
    gauge_family(
        e,
        "hive_scan_success",
        "Whether the last scan completed and listed tables (1) or failed (0): a MetaStore error, the timeout, or no table listable",
        snaps()
            .filter(|s| s.scan.started_unix > 0.0)
            .map(|s| (cl(s), f(u64::from(s.scan.success)))),
    )?;
    gauge_family(
        e,
        "hive_scan_last_success_timestamp_seconds",
        "End of the last successful scan (Unix seconds)",
        snaps().filter_map(|s| s.last_success_unix.map(|t| (cl(s), t))),
    )?;
    gauge_family(
        e,
        "hive_scan_tables",
        "Tables of the last completed scan by result",
        snaps().filter(|s| s.completed_once).flat_map(|s| {
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
        snaps()
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
            snaps().filter(|s| s.completed_once).flat_map(|s| {
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
        snaps().filter(|s| s.completed_once).flat_map(|s| {
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
        snaps()
            .filter(|s| s.completed_once)
            .map(|s| (cl(s), f(s.scan.listings))),
    )?;
    gauge_family(
        e,
        "hive_scan_reused_directories",
        "Directories the last completed scan reused from the previous one without a request",
        snaps()
            .filter(|s| s.completed_once)
            .map(|s| (cl(s), f(s.scan.reused_directories))),
    )?;
    gauge_family(
        e,
        "hive_scan_unreferenced_listings",
        "Directory listings the last completed scan made to find unreferenced files (included in hive_scan_listings)",
        snaps()
            .filter(|s| s.completed_once)
            .map(|s| (cl(s), f(s.scan.unreferenced_listings))),
    )?;
    gauge_family(
        e,
        "hive_metastore_up",
        "Whether the MetaStore database answered during the last scan",
        snaps()
            .filter(|s| s.scan.started_unix > 0.0)
            .map(|s| (cl(s), f(u64::from(s.scan.metastore_up)))),
    )?;
    if snaps().any(|s| s.schema.is_some()) {
        let mut family = e.encode_descriptor(
            "hive_metastore",
            "MetaStore schema as probed",
            None,
            MetricType::Info,
        )?;
        for s in snaps() {
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
    let pl = |p: &Published| [("cluster", p.snapshot.cluster.clone())];
    gauge_family(
        e,
        "hive_exporter_series",
        "Samples the cluster's snapshot families expose (these three hive_exporter_ families not counted)",
        pubs.iter().map(|p| (pl(p), f(p.series))),
    )?;
    gauge_family(
        e,
        "hive_exporter_tables_exported",
        "Scanned tables with per-table series (see [cluster.series])",
        pubs.iter().map(|p| (pl(p), f(p.selected.len() as u64))),
    )?;
    gauge_family(
        e,
        "hive_exporter_tables_omitted",
        "Scanned tables without per-table series, counted only in the hive_database_ rollups",
        pubs.iter().map(|p| (pl(p), f(p.omitted() as u64))),
    )?;
    Ok(())
}
