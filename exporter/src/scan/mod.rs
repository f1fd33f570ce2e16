//! One scan of one cluster: the MetaStore streamed page by page, directory listings with
//! bounded concurrency, folded into an immutable [`ClusterSnapshot`].
//!
//! Data flow: [`ClusterScanner::scan`] reads the tables without partitions (a few hundred
//! bytes each), then the partitions in keyset pages ordered by (TBL_ID, PART_ID)
//! ([`Metastore::read_partition_page`]): a page holds whole tables plus at most the end of
//! one and the start of another. The tables a page completes form a *chunk*, processed
//! completely before the next page is read: decide per table whether it is listed
//! ([`plan_table`], pure), list every partition's parent directory once to learn the
//! partitions' mtimes, walk the partition directories ([`walk`]) reusing unchanged ones from
//! the previous scan, look for data below partitioned tables' locations that no partition
//! points at ([`unreferenced`], [`unreferenced_walk`]), and fold into one [`TableStats`] per
//! table. Then the chunk is dropped.
//!
//! # Memory
//! What outlives a chunk is bounded by the number of tables (their rows, their `TableStats`)
//! or fixed (the worst partitions, `top_partitions` entries); per partition only the
//! directory cache's state remains (about 150 bytes, see [`DirCache`]). A chunk holds at most
//! one page of partitions plus the partitions of a table straddling pages (a table's
//! partitions are needed together: its unreferenced-data view compares them). With pages of
//! 10,000 partitions that is a few megabytes at any cluster size.
//!
//! # What chunking changes
//! A parent directory shared by tables of different chunks (a database directory holding
//! many unpartitioned tables) is listed once per chunk instead of once per scan; and a table
//! location lying inside a partition directory of a table of another chunk is examined by
//! the unreferenced-data view (its data is then counted twice: by the partition and as
//! unreferenced). Both are rare and cost requests, never wrong table totals.
//!
//! # Cold partitions and the worst partitions
//! A partition (or an unpartitioned table) is *cold* when its newest file is older than
//! `quiet_period` before the scan started (one without files, or whose directory is missing,
//! is cold): [`ColdCounts`] per table. The cluster's `top_partitions` worst partitions by
//! excess files (ties: more small files, then by name) are kept in a bounded heap; partitions
//! without excess files and unpartitioned tables are not candidates, nor are partitions of
//! tables that failed (they keep their previous numbers).
//!
//! One failing table or partition is counted and never fails the scan; a MetaStore failure
//! or the scan timeout fails the scan and keeps the previous tables; every table failing
//! fails it too.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::snapshot::{
    ClusterSnapshot, ColdCounts, PartitionStats, ScanSummary, SkippedTable, TableResults,
    TableStats, every_table_failed,
};
use hive_smallfiles_core::fs::webhdfs::WebHdfsConfigError;
use hive_smallfiles_core::fs::{
    EntryKind, FileSystem, FsError, LocationScheme, ResolvedLocation, parent_path, resolve_location,
};
use hive_smallfiles_core::metastore::{
    FileFormat, Metastore, MetastoreError, MetastoreSnapshot, NotScannedReason, PartitionCursor,
    SchemaInfo, TableMeta, TableType,
};

use hive_smallfiles_core::walk::counts::{FileCounts, excess_files};
use hive_smallfiles_core::walk::{self as walk, DirCache, walk_tree};

mod top;
pub mod unreferenced;
mod unreferenced_walk;

use top::TopPartitions;

use unreferenced::{ListedEntry, PartitionLayout};
use unreferenced_walk::ViewContext;

/// Errors that stop a whole scan.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The MetaStore could not be read.
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
    /// The filesystem client could not be built.
    #[error("storage: {0}")]
    Storage(#[from] WebHdfsConfigError),
    /// The scan ran longer than `scan_timeout`.
    #[error("scan timed out after {0:?}")]
    Timeout(Duration),
    /// Shutdown was requested.
    #[error("scan cancelled")]
    Cancelled,
    /// The thread a cluster's scans run on could not be started.
    #[error("cannot start a scan thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl ScanError {
    /// Whether the next scan may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Metastore(e) => e.is_retryable(),
            Self::Storage(_) => false,
            Self::Timeout(_) | Self::Cancelled | Self::Thread(_) => true,
        }
    }
}

/// `reason` of tables excluded by the include/exclude globs.
pub const FILTERED_GLOB: &str = "glob";
/// `reason` of tables in a Hive 3 catalog not in `metastore.catalogs`.
pub const FILTERED_CATALOG: &str = "catalog";
/// `reason` of materialized views when `materialized_views = false`.
pub const FILTERED_MATERIALIZED_VIEW: &str = "materialized_view";
/// `reason` of tables another shard scans (`shard = "i/n"`).
pub const FILTERED_SHARD: &str = "shard";

/// Live progress of a running scan, for progress lines.
#[derive(Debug, Default)]
pub struct ScanProgress {
    /// Tables to list in this scan.
    pub tables_total: AtomicU64,
    /// Tables finished.
    pub tables_done: AtomicU64,
    /// Partition directories finished.
    pub partitions_done: AtomicU64,
}

/// What to do with one table (pure decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablePlan {
    /// Excluded by the include/exclude globs.
    Filtered,
    /// Not listed, for this reason.
    Skipped(NotScannedReason),
    /// List these directories: (partition index or `None` for the table itself, path).
    List(Vec<PartitionTarget>),
}

/// One directory to walk for a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTarget {
    /// A directory on this cluster's filesystem.
    Path(String),
    /// A partition that cannot be listed (no location, other filesystem).
    Unlistable,
}

/// Decides whether and where a table is listed (pure).
pub fn plan_table(
    table: &TableMeta,
    include: impl Fn(&str, &str) -> bool,
    scheme: &LocationScheme,
) -> TablePlan {
    if !include(&table.database, &table.name) {
        return TablePlan::Filtered;
    }
    let class = table.class();
    if let Some(reason) = class.not_scanned {
        return TablePlan::Skipped(reason);
    }
    let resolve = |loc: Option<&str>| match loc.map(|l| resolve_location(l, scheme)) {
        Some(ResolvedLocation::Path(p)) => Ok(p),
        Some(ResolvedLocation::Foreign { .. }) => Err(NotScannedReason::ForeignFilesystem),
        Some(ResolvedLocation::OtherCluster { .. }) => Err(NotScannedReason::OtherCluster),
        Some(ResolvedLocation::Invalid) | None => Err(NotScannedReason::NoLocation),
    };
    if !table.is_partitioned() {
        return match resolve(table.location.as_deref()) {
            Ok(p) => TablePlan::List(vec![PartitionTarget::Path(p)]),
            Err(reason) => TablePlan::Skipped(reason),
        };
    }
    let targets: Vec<PartitionTarget> = table
        .partitions
        .iter()
        .map(|p| match resolve(p.location.as_deref()) {
            Ok(path) => PartitionTarget::Path(path),
            Err(_) => PartitionTarget::Unlistable,
        })
        .collect();
    // A partitioned table whose every partition lives elsewhere is skipped as a whole, with
    // the table location's reason (or foreign filesystem when the table has none).
    if !targets.is_empty() && targets.iter().all(|t| *t == PartitionTarget::Unlistable) {
        let reason = resolve(table.location.as_deref())
            .err()
            .unwrap_or(NotScannedReason::ForeignFilesystem);
        return TablePlan::Skipped(reason);
    }
    TablePlan::List(targets)
}

/// The `database` label of a table (see [`TableStats::database`]).
pub fn database_label(catalog: &str, database: &str) -> String {
    if catalog.eq_ignore_ascii_case("hive") {
        database.to_owned()
    } else {
        format!("@{catalog}#{database}")
    }
}

/// The `compression` label (pure).
pub fn compression_label(
    declared: Option<&str>,
    format: FileFormat,
    counts: &FileCounts,
) -> String {
    if let Some(d) = declared {
        return d.to_owned();
    }
    if let Some(c) = counts.dominant_codec() {
        return c.as_str().to_owned();
    }
    if format == FileFormat::Text {
        "none".to_owned()
    } else {
        "unknown".to_owned()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Scans one cluster again and again, remembering what the last scan learned.
#[derive(Debug)]
pub struct ClusterScanner {
    config: ClusterConfig,
    scheme: LocationScheme,
    fs: Arc<dyn FileSystem>,
    metastore: Option<Arc<Metastore>>,
    cache: Option<DirCache>,
    /// The worst partitions found by the last completed listing, for the next snapshot.
    top_partitions: Vec<PartitionStats>,
    last_full_scan: Option<Instant>,
    snapshot: Arc<ClusterSnapshot>,
    progress: Arc<ScanProgress>,
}

/// What listing one partition directory produced.
enum PartitionOutcome {
    Listed(walk::WalkOutcome),
    Missing(u64),
    Failed(FsError, u64),
}

impl ClusterScanner {
    /// A scanner over the given filesystem; the MetaStore is connected on first scan.
    pub fn new(config: ClusterConfig, fs: Arc<dyn FileSystem>) -> Self {
        let scheme = config.storage.location_scheme();
        let snapshot = Arc::new(ClusterSnapshot {
            cluster: config.name.clone(),
            small_file_bytes: config.small_file_bytes,
            target_file_bytes: config.target_file_bytes,
            scan_interval_seconds: config.scan_interval.as_secs_f64(),
            ..ClusterSnapshot::default()
        });
        Self {
            config,
            scheme,
            fs,
            metastore: None,
            cache: None,
            top_partitions: Vec::new(),
            last_full_scan: None,
            snapshot,
            progress: Arc::new(ScanProgress::default()),
        }
    }

    /// The cluster's configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The filesystem client.
    pub fn filesystem(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// The latest snapshot (initially empty).
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        Arc::clone(&self.snapshot)
    }

    /// A handle on the progress counters, valid for the next (or running) scan.
    pub fn progress_handle(&mut self) -> Arc<ScanProgress> {
        self.progress = Arc::new(ScanProgress::default());
        Arc::clone(&self.progress)
    }

    /// Directories remembered for the next scan.
    pub fn cached_directories(&self) -> usize {
        self.cache.as_ref().map_or(0, DirCache::len)
    }

    /// Statements sent to the MetaStore by this scanner's current connection pool (0 before
    /// the first scan; counting restarts after a reconnect).
    pub fn metastore_queries(&self) -> u64 {
        self.metastore.as_ref().map_or(0, |m| m.queries_executed())
    }

    /// Forgets cached directory states: the next scan lists everything.
    pub fn forget_cache(&mut self) {
        self.cache = None;
    }

    async fn metastore(&mut self) -> Result<&Arc<Metastore>, MetastoreError> {
        if self.metastore.is_none() {
            self.metastore = Some(Arc::new(Metastore::connect(&self.config.metastore).await?));
        }
        self.metastore
            .as_ref()
            .ok_or_else(|| MetastoreError::Connection("not connected".into()))
    }

    /// Runs one scan and swaps in its snapshot. Never fails: the outcome is in the
    /// snapshot's [`ScanSummary`]. Stops early (keeping the previous tables) on timeout or
    /// when `cancel` fires.
    pub async fn scan(&mut self, cancel: &CancellationToken) -> Arc<ClusterSnapshot> {
        let started = Instant::now();
        let started_unix = unix_now();
        let timeout = self.config.scan_timeout;
        let fs = Arc::clone(&self.fs);
        let mut endpoints = self.snapshot.endpoints.clone();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, async {
                // Endpoint health first (one cheap request per NameNode), inside the timeout
                // and the cancellation like everything else.
                endpoints = fs.probe().await;
                self.scan_inner().await
            }) => match r {
                Ok(r) => r,
                Err(_) => Err(ScanError::Timeout(timeout)),
            },
            () = cancel.cancelled() => Err(ScanError::Cancelled),
        };
        let duration_seconds = started.elapsed().as_secs_f64();
        let previous = Arc::clone(&self.snapshot);
        let next = match result {
            Ok((tables, mut summary, schema)) => {
                summary.started_unix = started_unix;
                summary.duration_seconds = duration_seconds;
                if let Some(e) = &summary.error {
                    tracing::warn!(cluster = %self.config.name, error = %e, "Scan failed: no table could be listed; keeping their previous numbers.");
                }
                let last_success_unix = if summary.success {
                    Some(unix_now())
                } else {
                    previous.last_success_unix
                };
                ClusterSnapshot {
                    cluster: self.config.name.clone(),
                    small_file_bytes: self.config.small_file_bytes,
                    target_file_bytes: self.config.target_file_bytes,
                    scan_interval_seconds: self.config.scan_interval.as_secs_f64(),
                    tables,
                    scan: summary,
                    last_success_unix,
                    completed_once: true,
                    schema: Some(schema),
                    endpoints,
                    top_partitions: std::mem::take(&mut self.top_partitions),
                }
            }
            Err(e) => {
                if matches!(e, ScanError::Metastore(ref m) if m.is_retryable()) {
                    // Reconnect next time: the pool may hold dead connections.
                    self.metastore = None;
                }
                tracing::warn!(cluster = %self.config.name, error = %e, "Scan failed; keeping the previous tables.");
                ClusterSnapshot {
                    scan: ScanSummary {
                        started_unix,
                        duration_seconds,
                        success: false,
                        metastore_up: !matches!(e, ScanError::Metastore(_)),
                        error: Some(e.to_string()),
                        ..ScanSummary::default()
                    },
                    endpoints,
                    ..(*previous).clone()
                }
            }
        };
        self.snapshot = Arc::new(next);
        Arc::clone(&self.snapshot)
    }

    async fn scan_inner(
        &mut self,
    ) -> Result<(Vec<TableStats>, ScanSummary, SchemaInfo), ScanError> {
        let ms = Arc::clone(self.metastore().await?);
        let MetastoreSnapshot {
            schema,
            tables,
            other_catalog_tables,
        } = ms.read_tables().await?;
        let mut run = self.begin_run(&other_catalog_tables, &tables);
        match self.stream(&ms, &mut run, tables).await {
            Ok(()) => {}
            Err(e) => {
                // The states listed so far are as good as any: keep them for the next scan
                // (which reuses only states of earlier scans whose mtime still matches).
                self.cache = Some(run.cache);
                return Err(e);
            }
        }
        Ok(self.finish_run(run, schema))
    }

    /// Reads the partition pages after `tables` (ordered by TBL_ID, as the pages are) and
    /// lists the tables chunk by chunk: each page's partitions are attached to their table,
    /// and the tables before the page's last TBL_ID are complete, listed and dropped.
    async fn stream(
        &self,
        ms: &Metastore,
        run: &mut ScanRun,
        tables: Vec<TableMeta>,
    ) -> Result<(), ScanError> {
        let mut pending: VecDeque<TableMeta> = tables.into();
        let mut cursor = PartitionCursor::START;
        loop {
            let batch = ms.read_partition_page(cursor).await?;
            for (tbl_id, partition) in batch.partitions {
                if let Ok(i) = pending.binary_search_by_key(&tbl_id, |t| t.id) {
                    pending[i].partitions.push(partition);
                }
            }
            let complete = match batch.next {
                Some(next) => pending.partition_point(|t| t.id < next.tbl_id),
                None => pending.len(),
            };
            if complete > 0 {
                let chunk: Vec<TableMeta> = pending.drain(..complete).collect();
                self.list_chunk(run, chunk).await;
            }
            match batch.next {
                Some(next) => cursor = next,
                None => return Ok(()),
            }
        }
    }

    /// Lists the tables of a MetaStore snapshot (everything after the MetaStore read) as one
    /// chunk.
    pub async fn list_tables(
        &mut self,
        metastore_snapshot: MetastoreSnapshot,
    ) -> Result<(Vec<TableStats>, ScanSummary, SchemaInfo), ScanError> {
        let MetastoreSnapshot {
            schema,
            tables,
            other_catalog_tables,
        } = metastore_snapshot;
        let mut run = self.begin_run(&other_catalog_tables, &tables);
        self.list_chunk(&mut run, tables).await;
        Ok(self.finish_run(run, schema))
    }

    /// Why a table is filtered before planning (materialized views, other shards, globs).
    fn filtered(&self, table: &TableMeta) -> Option<&'static str> {
        if !self.config.materialized_views
            && table.class().table_type == TableType::MaterializedView
        {
            return Some(FILTERED_MATERIALIZED_VIEW);
        }
        if let Some(shard) = self.config.shard
            && !shard.owns(
                &self.config.name,
                &database_label(&table.catalog, &table.database),
                &table.name,
            )
        {
            return Some(FILTERED_SHARD);
        }
        if !self.config.filter.matches(&table.database, &table.name) {
            return Some(FILTERED_GLOB);
        }
        None
    }

    /// Starts a scan over `tables` (partitions not needed): progress, cache generation.
    fn begin_run(
        &mut self,
        other_catalog_tables: &BTreeMap<String, u64>,
        tables: &[TableMeta],
    ) -> ScanRun {
        let total = tables.iter().filter(|t| self.filtered(t).is_none()).count();
        self.progress
            .tables_total
            .store(total as u64, Ordering::Relaxed);
        self.progress.tables_done.store(0, Ordering::Relaxed);
        self.progress.partitions_done.store(0, Ordering::Relaxed);
        let full_rescan = self
            .last_full_scan
            .is_none_or(|t| t.elapsed() >= self.config.full_rescan_interval);
        // An incremental scan updates the previous scan's cache in place; a full rescan drops
        // it before listing anything and sizes the new one like the old (no regrowth).
        let mut cache = if full_rescan {
            let hint = self.cache.take().map_or(0, |c| c.len());
            DirCache::with_capacity(hint + hint / 64)
        } else {
            self.cache.take().unwrap_or_default()
        };
        cache.begin_scan();
        let mut run = ScanRun {
            summary: ScanSummary {
                success: true,
                metastore_up: true,
                full_rescan,
                ..ScanSummary::default()
            },
            results: TableResults::default(),
            skipped_by_reason: BTreeMap::new(),
            filtered_by_reason: BTreeMap::new(),
            stats: Vec::with_capacity(total),
            first_error: None,
            cache,
            top: TopPartitions::new(self.config.top_partitions),
            cold_before_ms: cold_before_ms(self.config.quiet_period),
        };
        let other_catalogs: u64 = other_catalog_tables.values().sum();
        if other_catalogs > 0 {
            run.results.filtered += other_catalogs;
            run.filtered_by_reason
                .insert(FILTERED_CATALOG, other_catalogs);
        }
        run
    }

    /// Ends a scan: the exported tables sorted by (database, table), the summary, and the
    /// cache and worst partitions kept for the next scan and the snapshot.
    fn finish_run(
        &mut self,
        run: ScanRun,
        schema: SchemaInfo,
    ) -> (Vec<TableStats>, ScanSummary, SchemaInfo) {
        let ScanRun {
            mut summary,
            results,
            skipped_by_reason,
            filtered_by_reason,
            mut stats,
            first_error,
            mut cache,
            top,
            ..
        } = run;
        cache.end_scan();
        stats.sort_by(|a, b| (&a.database, &a.table).cmp(&(&b.database, &b.table)));
        stats.dedup_by(|a, b| a.database == b.database && a.table == b.table);
        if every_table_failed(&results) {
            summary.success = false;
            summary.error = Some(format!(
                "every table to list failed ({} tables), e.g. {}",
                results.failed,
                first_error.unwrap_or_default()
            ));
        }
        summary.tables = results;
        summary.skipped_by_reason = skipped_by_reason;
        summary.filtered_by_reason = filtered_by_reason;
        self.cache = Some(cache);
        self.top_partitions = top.into_sorted();
        if summary.full_rescan {
            self.last_full_scan = Some(Instant::now());
        }
        (stats, summary, schema)
    }

    /// Lists one chunk of complete tables (with all their partitions) and folds it into
    /// `run`; nothing of the chunk but its tables' [`TableStats`] outlives this call.
    async fn list_chunk(&self, run: &mut ScanRun, tables: Vec<TableMeta>) {
        let mut planned: Vec<(usize, Vec<PartitionTarget>)> = Vec::new();
        for (i, table) in tables.iter().enumerate() {
            if let Some(reason) = self.filtered(table) {
                run.results.filtered += 1;
                *run.filtered_by_reason.entry(reason).or_default() += 1;
                continue;
            }
            match plan_table(table, |_, _| true, &self.scheme) {
                TablePlan::Filtered => {
                    run.results.filtered += 1;
                    *run.filtered_by_reason.entry(FILTERED_GLOB).or_default() += 1;
                }
                TablePlan::Skipped(reason) => {
                    run.results.skipped += 1;
                    *run.skipped_by_reason.entry(reason.as_str()).or_default() += 1;
                    run.summary.skipped_tables.push(SkippedTable {
                        database: database_label(&table.catalog, &table.database),
                        table: table.name.clone(),
                        reason: reason.as_str(),
                    });
                    self.progress.tables_done.fetch_add(1, Ordering::Relaxed);
                }
                TablePlan::List(targets) => planned.push((i, targets)),
            }
        }

        // Paths below are borrowed from `planned` (which outlives every listing future). The
        // listings run as named async fns in a `FuturesUnordered` filled from plain
        // iterators, keeping this future `Send` (closures over borrowed data held across
        // awaits are not, to the compiler).

        // Partitioned tables' locations for the unreferenced-data view, in `planned` order.
        let locations: Vec<Option<String>> = planned
            .iter()
            .map(|(ti, _)| {
                let table = &tables[*ti];
                if !self.config.unreferenced_files || !table.is_partitioned() {
                    return None;
                }
                match resolve_location(table.location.as_deref()?, &self.scheme) {
                    ResolvedLocation::Path(p) => Some(p),
                    _ => None,
                }
            })
            .collect();
        let mut layout = PartitionLayout::new(planned.iter().flat_map(|(_, t)| target_paths(t)));
        let mut examined_locations: Vec<(usize, &str)> = Vec::new();
        for ((ti, targets), location) in planned.iter().zip(&locations) {
            if let Some(location) = location
                && layout.add_table(location, target_paths(targets))
            {
                examined_locations.push((*ti, location.as_str()));
            }
        }

        // 1. Parents of the chunk's partition directories, each listed once: the partitions'
        // mtimes (and, for directories the unreferenced-data view examines, their other
        // entries).
        let wanted = layout.parents();
        let fs = Arc::clone(&self.fs);
        let fs = fs.as_ref();
        let concurrency = self.config.list_concurrency;
        let mut parent_listings: HashMap<&str, ParentListing<'_>> =
            HashMap::with_capacity(wanted.len());
        let mut in_flight = FuturesUnordered::new();
        let mut parents = wanted.iter();
        loop {
            while in_flight.len() < concurrency {
                let Some((&parent, names)) = parents.next() else {
                    break;
                };
                in_flight.push(list_parent(fs, parent, names, layout.is_examined(parent)));
            }
            let Some((parent, found)) = in_flight.next().await else {
                break;
            };
            parent_listings.insert(parent, found);
        }
        run.summary.listings += parent_listings.len() as u64;

        // 2. Walk every partition directory.
        let walk = WalkContext {
            fs,
            parent_listings: &parent_listings,
            cache: &run.cache,
            small: self.config.small_file_bytes,
            progress: &self.progress,
        };
        let target_bytes = self.config.target_file_bytes;
        let mut per_table: HashMap<usize, TableAccumulator> = HashMap::new();
        let mut top = TopPartitions::new(self.config.top_partitions);
        let mut targets = Targets {
            planned: &planned,
            table: 0,
            target: 0,
        };
        let summary = &mut run.summary;
        let mut outcomes = FuturesUnordered::new();
        loop {
            while outcomes.len() < concurrency {
                let Some((ti, pi, target)) = targets.next() else {
                    break;
                };
                outcomes.push(walk.partition(ti, pi, target));
            }
            let Some((ti, pi, outcome)) = outcomes.next().await else {
                break;
            };
            let acc = per_table.entry(ti).or_default();
            match outcome {
                None => summary.partitions.skipped += 1,
                Some(PartitionOutcome::Listed(w)) => {
                    summary.partitions.listed += 1;
                    summary.listings += w.listings;
                    summary.reused_directories += w.reused;
                    let excess = excess_files(w.counts.files, w.counts.bytes, target_bytes);
                    acc.excess += excess;
                    if w.counts.newest_modification_ms < run.cold_before_ms {
                        acc.cold.add(&w.counts, excess);
                    }
                    let table = &tables[ti];
                    if table.is_partitioned()
                        && top.admits(excess, w.counts.small_files)
                        && let Some(partition) = table.partitions.get(pi)
                    {
                        top.offer(
                            PartitionStats {
                                database: database_label(&table.catalog, &table.database),
                                table: table.name.clone(),
                                partition: partition.name.clone(),
                                files: w.counts.files,
                                bytes: w.counts.bytes,
                                small_files: w.counts.small_files,
                                small_bytes: w.counts.small_bytes,
                                excess_files: excess,
                                newest_modification_ms: w.counts.newest_modification_ms,
                            },
                            ti,
                        );
                    }
                    acc.counts.merge(&w.counts);
                }
                Some(PartitionOutcome::Missing(listings)) => {
                    summary.partitions.missing += 1;
                    summary.listings += listings;
                    acc.missing += 1;
                    // No files: cold.
                    acc.cold.partitions += 1;
                }
                Some(PartitionOutcome::Failed(e, listings)) => {
                    summary.partitions.failed += 1;
                    summary.listings += listings;
                    if acc.error.is_none() {
                        acc.error = Some(e);
                    }
                }
            }
        }
        drop(outcomes);

        // 3. Data below partitioned tables' locations that no partition points at.
        let view = ViewContext {
            fs,
            layout: &layout,
            parent_listings: &parent_listings,
            cache: &run.cache,
            small: self.config.small_file_bytes,
            concurrency,
        };
        let mut unreferenced = view.run(&examined_locations).await;
        run.summary.listings += unreferenced.listings;
        run.summary.unreferenced_listings += unreferenced.listings;
        run.summary.reused_directories += unreferenced.reused;

        // 4. Fold per table; a failed table keeps its previous numbers when it has any.
        let previous = &self.snapshot.tables;
        let find_previous = |database: &str, table: &str| {
            previous
                .binary_search_by(|t| {
                    (t.database.as_str(), t.table.as_str()).cmp(&(database, table))
                })
                .ok()
                .and_then(|i| previous.get(i))
        };
        let mut failed: HashSet<usize> = HashSet::new();
        for ((ti, _), location) in planned.iter().zip(&locations) {
            let table = &tables[*ti];
            let acc = per_table.remove(ti).unwrap_or_default();
            let findings = unreferenced.tables.remove(ti).unwrap_or_default();
            let database = database_label(&table.catalog, &table.database);
            self.progress.tables_done.fetch_add(1, Ordering::Relaxed);
            if let Some(e) = acc.error.as_ref().or(findings.error.as_ref()) {
                run.results.failed += 1;
                failed.insert(*ti);
                run.first_error
                    .get_or_insert_with(|| format!("{database}.{}: {e}", table.name));
                tracing::warn!(cluster = %self.config.name, database = %database, table = %table.name, error = %e, "Listing a table failed.");
                if let Some(old) = find_previous(&database, &table.name) {
                    run.stats.push(old.clone());
                }
                continue;
            }
            run.results.scanned += 1;
            let class = table.class();
            run.stats.push(TableStats {
                catalog: table.catalog.clone(),
                compression: compression_label(
                    class.declared_compression.as_deref(),
                    class.format,
                    &acc.counts,
                ),
                database,
                table: table.name.clone(),
                format: class.format.as_str(),
                table_type: class.table_type.as_str(),
                transactional: class.transactional.as_str(),
                location: table.location.clone().unwrap_or_default(),
                partitions: table.partitions.len() as u64,
                counts: acc.counts,
                excess_files: acc.excess,
                missing_directories: acc.missing,
                // Examined, or nothing to examine (the location lies in a partition).
                unreferenced: location.as_ref().map(|_| findings.found),
                cold: acc.cold,
            });
        }
        top.drain_into(&mut run.top, |ti| !failed.contains(&ti));
    }
}

/// The cutoff of cold partitions: newest file older than `quiet_period` before now.
fn cold_before_ms(quiet_period: Duration) -> i64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    now_ms.saturating_sub(i64::try_from(quiet_period.as_millis()).unwrap_or(i64::MAX))
}

/// State of one scan across its chunks of tables.
struct ScanRun {
    summary: ScanSummary,
    results: TableResults,
    skipped_by_reason: BTreeMap<&'static str, u64>,
    filtered_by_reason: BTreeMap<&'static str, u64>,
    /// Tables finished so far (unsorted until [`ClusterScanner::finish_run`]).
    stats: Vec<TableStats>,
    first_error: Option<String>,
    cache: DirCache,
    top: TopPartitions,
    /// Partitions whose newest file is older than this (ms since the epoch) are cold.
    cold_before_ms: i64,
}

/// Per listed parent directory: what listing it found, or `None` when it could not be listed.
type ParentListing<'a> = Option<ParentEntries<'a>>;

/// What listing one parent directory found.
struct ParentEntries<'a> {
    /// The wanted names found in it (borrowed keys), with their kind and mtime.
    found: HashMap<&'a str, (EntryKind, i64)>,
    /// Its other visible entries, kept only for directories the unreferenced-data view
    /// examines (they are what it looks at).
    others: Vec<ListedEntry>,
}

/// Lists one parent directory, keeping the kind and mtime of the wanted entries and, when
/// `keep_others`, the other visible entries.
async fn list_parent<'a>(
    fs: &dyn FileSystem,
    parent: &'a str,
    names: &HashSet<&'a str>,
    keep_others: bool,
) -> (&'a str, ParentListing<'a>) {
    let mut found = HashMap::with_capacity(names.len());
    let mut others = Vec::new();
    let r = fs
        .list_entries(parent, &mut |entry| {
            if let Some(&name) = names.get(entry.name) {
                found.insert(name, (entry.kind, entry.modification_time_ms));
            } else if keep_others && !entry.is_hidden() {
                others.push(ListedEntry::from(entry));
            }
        })
        .await;
    (parent, r.ok().map(|()| ParentEntries { found, others }))
}

/// The planned targets in order, as (table index, path or `None` when unlistable).
struct Targets<'a> {
    planned: &'a [(usize, Vec<PartitionTarget>)],
    table: usize,
    target: usize,
}

impl<'a> Iterator for Targets<'a> {
    /// (table index, partition index, path or `None` when unlistable).
    type Item = (usize, usize, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (ti, targets) = self.planned.get(self.table)?;
            let pi = self.target;
            if let Some(t) = targets.get(pi) {
                self.target += 1;
                return Some(match t {
                    PartitionTarget::Path(p) => (*ti, pi, Some(p.as_str())),
                    PartitionTarget::Unlistable => (*ti, pi, None),
                });
            }
            self.table += 1;
            self.target = 0;
        }
    }
}

/// What walking a partition directory needs, shared by all walks of one scan.
struct WalkContext<'a> {
    fs: &'a dyn FileSystem,
    parent_listings: &'a HashMap<&'a str, ParentListing<'a>>,
    cache: &'a DirCache,
    small: u64,
    progress: &'a ScanProgress,
}

impl WalkContext<'_> {
    /// Walks target `pi` of table `ti` (`None`: unlistable, skipped).
    async fn partition(
        &self,
        ti: usize,
        pi: usize,
        target: Option<&str>,
    ) -> (usize, usize, Option<PartitionOutcome>) {
        let outcome = match target {
            None => None,
            Some(path) => {
                let (parent, name) = split_parent(path);
                let seen = self.parent_listings.get(parent).and_then(Option::as_ref);
                let observed = seen.map(|m| m.found.get(name).copied());
                Some(match observed {
                    // The parent was listed and the directory is not in it.
                    Some(None) => PartitionOutcome::Missing(0),
                    Some(Some((EntryKind::File, _))) | None => {
                        list_partition(self.fs, path, None, self.cache, self.small).await
                    }
                    Some(Some((_, mtime))) => {
                        list_partition(self.fs, path, Some(mtime), self.cache, self.small).await
                    }
                })
            }
        };
        self.progress
            .partitions_done
            .fetch_add(1, Ordering::Relaxed);
        (ti, pi, outcome)
    }
}

#[derive(Default)]
struct TableAccumulator {
    counts: FileCounts,
    excess: u64,
    missing: u64,
    cold: ColdCounts,
    error: Option<FsError>,
}

/// The paths of the listable targets.
fn target_paths(targets: &[PartitionTarget]) -> impl Iterator<Item = &str> {
    targets.iter().filter_map(|t| match t {
        PartitionTarget::Path(p) => Some(p.as_str()),
        PartitionTarget::Unlistable => None,
    })
}

/// Splits a normalized absolute path into its parent and last segment.
fn split_parent(path: &str) -> (&str, &str) {
    let parent = parent_path(path);
    (parent, path[parent.len()..].trim_start_matches('/'))
}

async fn list_partition(
    fs: &dyn FileSystem,
    path: &str,
    observed: Option<i64>,
    cache: &DirCache,
    small: u64,
) -> PartitionOutcome {
    match walk_tree(fs, path, observed, cache, small).await {
        Ok(w) => PartitionOutcome::Listed(w),
        Err(FsError::NotFound { .. }) => PartitionOutcome::Missing(1),
        Err(e) => PartitionOutcome::Failed(e, 1),
    }
}

#[cfg(test)]
mod tests;
