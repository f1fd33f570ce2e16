//! The long-running exporter: one scan loop per cluster on its own interval, publishing each
//! finished snapshot, and one shutdown path.
//!
//! Scans never run on scrape. A loop waits `scan_interval` between scan *starts*; a scan that
//! overruns its interval is followed immediately by the next one (and shows in
//! `hive_scan_duration_seconds` against `hive_cluster_scan_interval_seconds`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::{Metrics, ScanLabels};
use crate::scan::{ClusterScanner, ScanError, ScanProgress, build_filesystem};

/// How often a running scan logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Builds one scanner per configured cluster.
pub fn build_scanners(
    config: &Config,
    metrics: &Metrics,
) -> Result<Vec<ClusterScanner>, ScanError> {
    config
        .clusters
        .iter()
        .map(|c| {
            Ok(ClusterScanner::new(
                c.clone(),
                build_filesystem(c, &metrics.webhdfs)?,
            ))
        })
        .collect()
}

/// Spawns every cluster's scan loop on `tracker`; they stop when `shutdown` fires.
pub fn spawn_scan_loops(
    scanners: Vec<ClusterScanner>,
    metrics: &Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    for scanner in scanners {
        metrics.snapshots.publish(scanner.snapshot());
        tracker.spawn(scan_loop(scanner, Arc::clone(metrics), shutdown.clone()));
    }
}

async fn scan_loop(
    mut scanner: ClusterScanner,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let cluster = scanner.config().name.clone();
    let interval = scanner.config().scan_interval;
    loop {
        let started = Instant::now();
        tracing::info!(%cluster, "Scan started.");
        let progress_log = tokio::spawn(log_progress(cluster.clone(), scanner.progress_handle()));
        let snapshot = scanner.scan(&shutdown).await;
        progress_log.abort();
        metrics.snapshots.publish(Arc::clone(&snapshot));
        let result = if snapshot.scan.success {
            "success"
        } else {
            "failure"
        };
        metrics
            .scans
            .get_or_create(&ScanLabels {
                cluster: cluster.clone(),
                result: result.into(),
            })
            .inc();
        let s = &snapshot.scan;
        if s.success {
            tracing::info!(
                %cluster,
                seconds = format!("{:.1}", s.duration_seconds),
                tables = s.tables.scanned,
                failed = s.tables.failed,
                partitions = s.partitions.listed,
                listings = s.listings,
                reused = s.reused_directories,
                full = s.full_rescan,
                "Scan finished."
            );
        }
        let next = started + interval;
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::info!(%cluster, "Scan loop stopped.");
}

async fn log_progress(cluster: String, progress: Arc<ScanProgress>) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let done = progress.tables_done.load(Ordering::Relaxed);
        let total = progress.tables_total.load(Ordering::Relaxed);
        let partitions = progress.partitions_done.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let rate = partitions as f64 / started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(%cluster, tables_done = done, tables_total = total, partitions, partitions_per_second = format!("{rate:.0}"), "Scan in progress.");
    }
}

/// A future that completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Logging to stderr with an `EnvFilter` directive (`info`, `debug`, `crate=debug`...); an
/// invalid directive falls back to `info`. For the binaries' `main`.
pub fn init_logging(directive: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
