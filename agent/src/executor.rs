//! The merge executor: the [`JobRunner`] that carries out one job through the cluster's SQL
//! engine over the HiveServer2 protocol.
//!
//! Steps, each recorded in the audit log: re-read the table from the live MetaStore (alert
//! labels are never trusted), rescan its partitions, plan ([`crate::plan`], which applies the
//! policy), reserve the bytes budget, then per partition: count rows, run the merge, count
//! rows again — a difference stops the job and is reported — and run the post-merge
//! statements; finally rescan to record files after. Cancellation is honoured only between
//! partitions, never in the middle of a merge statement.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use hive_smallfiles_core::fs::factory::write_filesystem;
use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::fs::{FsError, ResolvedLocation, resolve_location};
use hive_smallfiles_core::metastore::{Metastore, MetastoreError, TableMeta};
use hive_smallfiles_core::walk::{DirCache, walk_tree};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::config::{AgentCluster, NativeSettings};
use crate::hiveserver2::{Hs2Error, Hs2Session, Value};
use crate::metrics::{AgentMetrics, ReasonLabels};
use crate::native::commit::{Listing, VerifyAs};
use crate::native::lock::Identity;
use crate::native::manifest::Writer;
use crate::native::writer::NativeWriter;
use crate::native::{
    CommitSettings, Committer, MergeReport, NativeError, StageWriter, Staged, Target,
};
use crate::plan::{MergePlan, PartitionState, PlanInput, plan};
use crate::plan::{PlannedPartition, Strategy, native_format};
use crate::policy::{Policy, Skip};
use crate::work::{ByteBudget, JobOutcome, JobRecord, JobRunner, TableKey};

/// One cluster's connections.
#[derive(Debug)]
struct ClusterRuntime {
    config: AgentCluster,
    fs: Arc<dyn FileSystemWrite>,
    committer: Committer,
    metastore: Mutex<Option<Arc<Metastore>>>,
}

/// Why a step failed: kind label, detail, retryable.
type StepError = (&'static str, String, bool);

fn ms_error(e: &MetastoreError) -> StepError {
    ("metastore", e.to_string(), e.is_retryable())
}

fn hs2_error(e: &Hs2Error) -> StepError {
    ("engine", e.to_string(), e.is_retryable())
}

fn native_error(e: &NativeError) -> StepError {
    (e.reason(), e.to_string(), e.is_retryable())
}

/// `hdfs://ns1` of `hdfs://ns1/w/t`, `file:` of `file:/w/t`, empty for a bare path: what is
/// put before a path to give the engine a URI on the table's own filesystem.
fn uri_prefix(location: &str) -> String {
    let location = location.trim();
    if location.starts_with('/') {
        return String::new();
    }
    let Some((scheme, rest)) = location.split_once(':') else {
        return String::new();
    };
    match rest.strip_prefix("//") {
        Some(after) => format!("{scheme}://{}", after.split('/').next().unwrap_or_default()),
        None => format!("{scheme}:"),
    }
}

impl ClusterRuntime {
    async fn metastore(&self) -> Result<Arc<Metastore>, MetastoreError> {
        let mut g = self.metastore.lock().await;
        if let Some(m) = &*g {
            return Ok(Arc::clone(m));
        }
        let m = Arc::new(Metastore::connect(&self.config.metastore).await?);
        *g = Some(Arc::clone(&m));
        Ok(m)
    }

    async fn forget_metastore(&self) {
        *self.metastore.lock().await = None;
    }
}

/// Carries out merges through HiveServer2-protocol engines.
#[derive(Debug)]
pub struct MergeRunner {
    clusters: BTreeMap<String, ClusterRuntime>,
    policy: Policy,
    audit: Arc<AuditLog>,
    metrics: Arc<AgentMetrics>,
}

/// A table as read and listed now.
struct TableNow {
    table: TableMeta,
    columns: Vec<hive_smallfiles_core::metastore::Column>,
    partitions: Vec<PartitionState>,
    hive3: bool,
}

impl TableNow {
    /// The planner's input for this table on this cluster, now.
    fn plan_input<'a>(
        &'a self,
        rt: &ClusterRuntime,
        requested: &'a BTreeSet<String>,
    ) -> PlanInput<'a> {
        PlanInput {
            table: &self.table,
            columns: &self.columns,
            partitions: self.partitions.clone(),
            engine: rt.config.engine,
            hive3: self.hive3,
            target_file_bytes: rt.config.target_file_bytes,
            requested,
            executor: rt.config.executor,
            has_engine: rt.config.hiveserver2.is_some(),
            now: SystemTime::now(),
        }
    }
}

impl MergeRunner {
    /// A runner for these clusters.
    pub fn new(
        clusters: &BTreeMap<String, AgentCluster>,
        policy: Policy,
        audit: Arc<AuditLog>,
        metrics: Arc<AgentMetrics>,
        webhdfs_metrics: &WebHdfsMetrics,
        native: &NativeSettings,
    ) -> Result<Self, String> {
        let mut runtimes = BTreeMap::new();
        let identity = Identity::new(&native.agent_id, native.lock_stale_after);
        for (name, c) in clusters {
            let fs = write_filesystem(&c.storage, webhdfs_metrics)
                .map_err(|e| format!("cluster {name}: {e}"))?;
            let committer = Committer::new(
                Arc::clone(&fs),
                CommitSettings {
                    identity: identity.clone(),
                    backup_retention: native.backup_retention,
                    spool_dir: native.spool_dir.join(name),
                },
            );
            runtimes.insert(
                name.clone(),
                ClusterRuntime {
                    config: c.clone(),
                    fs,
                    committer,
                    metastore: Mutex::new(None),
                },
            );
        }
        Ok(Self {
            clusters: runtimes,
            policy,
            audit,
            metrics,
        })
    }

    /// The agent's metrics this runner records into.
    pub fn metrics(&self) -> Arc<AgentMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The id after the highest one in the audit log.
    pub fn first_job_id(&self) -> u64 {
        self.audit.max_job_id() + 1
    }

    fn cluster(&self, key: &TableKey) -> Result<&ClusterRuntime, StepError> {
        self.clusters.get(&key.cluster).ok_or((
            "unknown_cluster",
            format!("no cluster {:?} configured", key.cluster),
            false,
        ))
    }

    /// Reads the table from the MetaStore and lists its partitions. `None`: table not found.
    async fn read_now(
        &self,
        rt: &ClusterRuntime,
        key: &TableKey,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Option<TableNow>, StepError> {
        let ms = rt.metastore().await.map_err(|e| ms_error(&e))?;
        let (catalog, database) = key.catalog_and_database();
        let read = async {
            let schema = ms.probe().await?;
            let Some(table) = ms.read_table(catalog, database, &key.table).await? else {
                return Ok(None);
            };
            let columns = ms.table_columns(&table).await?;
            Ok::<_, MetastoreError>(Some((schema, table, columns)))
        };
        let (schema, table, columns) = match read.await {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(None),
            Err(e) => {
                if e.is_retryable() {
                    rt.forget_metastore().await;
                }
                return Err(ms_error(&e));
            }
        };
        let partitions = list_partitions(rt, &table, only).await?;
        Ok(Some(TableNow {
            table,
            columns,
            partitions,
            hive3: schema.has_catalogs,
        }))
    }

    fn skip(&self, job: &JobRecord, s: &Skip) -> JobOutcome {
        self.metrics
            .policy_skipped
            .get_or_create(&ReasonLabels {
                reason: s.reason.to_owned(),
            })
            .inc();
        self.audit.record(
            job.id,
            "skipped",
            json!({ "reason": s.reason, "detail": s.detail }),
        );
        JobOutcome::Skipped {
            reason: s.reason.to_owned(),
            detail: s.detail.clone(),
        }
    }

    fn fail(&self, job: &JobRecord, (kind, error, retryable): StepError) -> JobOutcome {
        self.audit.record(
            job.id,
            "failed",
            json!({ "kind": kind, "error": error, "retryable": retryable }),
        );
        JobOutcome::Failed {
            kind: kind.to_owned(),
            error,
            retryable,
        }
    }

    async fn run_job(
        &self,
        job: &JobRecord,
        budget: &dyn ByteBudget,
        cancel: &CancellationToken,
    ) -> Result<JobOutcome, StepError> {
        let key = &job.item.key;
        let rt = self.cluster(key)?;
        let Some(now) = self.read_now(rt, key, None).await? else {
            return Ok(self.skip(
                job,
                &Skip::new("table_not_found", format!("{key} is not in the MetaStore")),
            ));
        };
        let merge_plan = match plan(&now.plan_input(rt, &job.item.partitions), &self.policy) {
            Ok(p) => p,
            Err(s) => return Ok(self.skip(job, &s)),
        };
        self.audit.record(job.id, "planned", json!({ "plan": &merge_plan, "source": job.item.source, "fingerprints": &job.item.fingerprints }));
        let files_before: u64 = merge_plan.partitions.iter().map(|p| p.files).sum();
        let parts = merge_plan.partitions.len() as u32;
        if job.item.dry_run || self.policy.dry_run {
            self.audit.record(job.id, "dry_run", json!({ "statements": statements_preview(&merge_plan, &rt.config.post_merge_statements) }));
            return Ok(JobOutcome::DryRun {
                strategy: merge_plan.strategy.as_str().to_owned(),
                partitions: parts,
            });
        }
        if let Err(wait) = budget.try_reserve(&key.cluster, merge_plan.total_bytes) {
            return Err((
                "bytes_budget",
                format!(
                    "bytes-per-hour budget exhausted; retry in {}s",
                    wait.as_secs()
                ),
                true,
            ));
        }
        if matches!(
            merge_plan.strategy,
            Strategy::Native | Strategy::EngineStaged
        ) {
            return self
                .execute_staged(job, rt, &now, &merge_plan, cancel)
                .await;
        }
        let merged = self.execute(job, rt, &merge_plan, cancel).await?;
        // Rescan what was merged.
        let names: BTreeSet<String> = merge_plan
            .partitions
            .iter()
            .take(merged)
            .map(|p| p.name.clone())
            .collect();
        let after = match self.read_now(rt, key, Some(&names)).await {
            Ok(Some(now)) => now
                .partitions
                .iter()
                .filter(|p| names.contains(&p.name))
                .map(|p| p.files)
                .sum(),
            _ => 0,
        };
        let before: u64 = merge_plan
            .partitions
            .iter()
            .take(merged)
            .map(|p| p.files)
            .sum();
        self.audit.record(job.id, "rescanned", json!({ "files_before": before, "files_after": after, "files_before_all_planned": files_before }));
        Ok(JobOutcome::Merged {
            strategy: merge_plan.strategy.as_str().to_owned(),
            partitions: merged as u32,
            files_before: before,
            files_after: after,
            bytes_rewritten: merge_plan
                .partitions
                .iter()
                .take(merged)
                .map(|p| p.bytes)
                .sum(),
        })
    }

    /// Runs the plan; returns how many partitions were merged.
    async fn execute(
        &self,
        job: &JobRecord,
        rt: &ClusterRuntime,
        p: &MergePlan,
        cancel: &CancellationToken,
    ) -> Result<usize, StepError> {
        let hs2 = rt.config.hiveserver2.as_ref().ok_or((
            "no_engine",
            "no hiveserver2 configured".to_owned(),
            false,
        ))?;
        let mut session = Hs2Session::open(hs2).await.map_err(|e| hs2_error(&e))?;
        let never = CancellationToken::new();
        let result = async {
            for stmt in &p.setup {
                self.send(job, &mut session, stmt, &never).await?;
            }
            let mut merged = 0;
            for part in &p.partitions {
                // The only place a job stops early: between partitions.
                if cancel.is_cancelled() {
                    self.audit.record(job.id, "stopped", json!({ "reason": "shutdown", "merged_partitions": merged }));
                    break;
                }
                let started = Instant::now();
                let before = if p.verifies_row_counts() { Some(self.count(job, &mut session, &p.count_statement(part)).await?) } else { None };
                // A merge statement is never cancelled half-way: the engine's commit is its own.
                self.send(job, &mut session, &p.merge_statement(part), &never).await?;
                if let Some(before) = before {
                    let after = self.count(job, &mut session, &p.count_statement(part)).await?;
                    self.audit.record(job.id, "row_count", json!({ "partition": &part.name, "before": before, "after": after }));
                    if before != after {
                        return Err((
                            "row_count_mismatch",
                            format!("partition {:?}: {before} rows before the merge, {after} after; stopped", part.name),
                            false,
                        ));
                    }
                }
                for stmt in p.post_statements(part, &rt.config.post_merge_statements) {
                    self.send(job, &mut session, &stmt, &never).await?;
                }
                self.audit.record(job.id, "partition_merged", json!({ "partition": &part.name, "seconds": started.elapsed().as_secs_f64() }));
                merged += 1;
            }
            Ok(merged)
        }
        .await;
        let _ = session.close().await;
        result
    }

    /// Native and engine-staged merges: per partition, the commit protocol; afterwards the
    /// post-merge statements when an engine is configured.
    async fn execute_staged(
        &self,
        job: &JobRecord,
        rt: &ClusterRuntime,
        now: &TableNow,
        p: &MergePlan,
        cancel: &CancellationToken,
    ) -> Result<JobOutcome, StepError> {
        let mut session = match &rt.config.hiveserver2 {
            Some(cfg) => Some(Hs2Session::open(cfg).await.map_err(|e| hs2_error(&e))?),
            None => None,
        };
        let never = CancellationToken::new();
        let result = async {
            if p.strategy == Strategy::EngineStaged {
                if let Some(s) = session.as_mut() {
                    for stmt in &p.setup {
                        self.send(job, s, stmt, &never).await?;
                    }
                }
            }
            let session = Mutex::new(session.take());
            let mut reports: Vec<MergeReport> = Vec::new();
            for part in &p.partitions {
                if cancel.is_cancelled() {
                    self.audit.record(job.id, "stopped", json!({ "reason": "shutdown", "merged_partitions": reports.len() }));
                    break;
                }
                let Some(path) = part.path.clone() else {
                    return Err(("storage", format!("partition {:?} has no resolvable location", part.name), false));
                };
                let target = Target {
                    cluster: rt.config.name.clone(),
                    table: format!("{}.{}", now.table.database, now.table.name),
                    partition: part.name.clone(),
                    path,
                };
                let started = Instant::now();
                let report = if p.strategy == Strategy::Native {
                    let format = native_format(&now.table).map_err(|s| (s.reason, s.detail, false))?;
                    let writer = NativeWriter { format, target_bytes: rt.config.target_file_bytes };
                    rt.committer.merge(job.id, &target, &writer).await
                } else {
                    let location = if part.name.is_empty() {
                        now.table.location.clone()
                    } else {
                        now.table.partitions.iter().find(|x| x.name == part.name).and_then(|x| x.location.clone())
                    };
                    let writer = EngineWriter {
                        runner: self,
                        job,
                        plan: p,
                        part,
                        session: &session,
                        uri_prefix: uri_prefix(location.as_deref().unwrap_or_default()),
                        verify_as: match now.table.class().format {
                            hive_smallfiles_core::metastore::FileFormat::Parquet => VerifyAs::Parquet,
                            hive_smallfiles_core::metastore::FileFormat::Orc => VerifyAs::Orc,
                            _ => VerifyAs::Text,
                        },
                    };
                    rt.committer.merge(job.id, &target, &writer).await
                };
                let report = match report {
                    Ok(r) => r,
                    Err(e) => {
                        self.metrics.native_failures.get_or_create(&ReasonLabels { reason: e.reason().to_owned() }).inc();
                        self.audit.record(job.id, "partition_failed", json!({ "partition": &part.name, "reason": e.reason(), "error": e.to_string(), "merged_partitions": reports.len() }));
                        return Err(native_error(&e));
                    }
                };
                self.audit.record(job.id, "committed", json!({ "cluster": &rt.config.name, "partition": &part.name, "report": &report, "seconds": started.elapsed().as_secs_f64() }));
                if let Some(s) = session.lock().await.as_mut() {
                    for stmt in p.post_statements(part, &rt.config.post_merge_statements) {
                        self.send(job, s, &stmt, &never).await?;
                    }
                }
                reports.push(report);
            }
            Ok(reports)
        }
        .await;
        if let Some(s) = session {
            let _ = s.close().await;
        }
        let reports = result?;
        Ok(JobOutcome::Merged {
            strategy: p.strategy.as_str().to_owned(),
            partitions: reports.len() as u32,
            files_before: reports.iter().map(|r| r.files_before).sum(),
            files_after: reports.iter().map(|r| r.files_after).sum(),
            bytes_rewritten: reports.iter().map(|r| r.bytes_before).sum(),
        })
    }

    /// Every staging area under the allowed tables of every cluster, recovered: interrupted
    /// merges rolled forward or back, expired backups and abandoned staging removed.
    pub async fn recover_all(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for (name, rt) in &self.clusters {
            let parents = match self.staging_parents(rt).await {
                Ok(p) => p,
                Err(e) => {
                    out.push(json!({ "cluster": name, "error": e.1 }));
                    continue;
                }
            };
            for (area, result) in rt.committer.recover_in(&parents).await {
                match result {
                    Ok(recovered) => {
                        for r in recovered {
                            self.metrics
                                .recovered
                                .get_or_create(&ReasonLabels {
                                    reason: r.action.to_owned(),
                                })
                                .inc();
                            out.push(json!({ "cluster": name, "area": &area, "merge_dir": r.merge_dir, "action": r.action, "error": r.error }));
                        }
                    }
                    Err(e) => {
                        out.push(json!({ "cluster": name, "area": &area, "error": e.to_string() }))
                    }
                }
            }
        }
        self.audit.record(0, "recovery", json!({ "results": &out }));
        out
    }

    /// Directories that may hold staging areas: the parents of every partition (and of every
    /// unpartitioned table's directory) of the tables the policy allows.
    async fn staging_parents(&self, rt: &ClusterRuntime) -> Result<Vec<String>, StepError> {
        let ms = rt.metastore().await.map_err(|e| ms_error(&e))?;
        let snapshot = match ms.read_snapshot().await {
            Ok(s) => s,
            Err(e) => {
                rt.forget_metastore().await;
                return Err(ms_error(&e));
            }
        };
        let scheme = rt.config.storage.location_scheme();
        let mut parents = BTreeSet::new();
        for t in &snapshot.tables {
            if !self.policy.tables.matches(&t.database, &t.name) {
                continue;
            }
            let locations: Vec<&Option<String>> = if t.is_partitioned() {
                t.partitions.iter().map(|p| &p.location).collect()
            } else {
                vec![&t.location]
            };
            for l in locations.into_iter().flatten() {
                if let ResolvedLocation::Path(p) = resolve_location(l, &scheme) {
                    parents.insert(hive_smallfiles_core::fs::parent_path(&p).to_owned());
                }
            }
        }
        Ok(parents.into_iter().collect())
    }

    /// Rolls back one merge directory on a cluster (CLI).
    pub async fn rollback_merge_dir(
        &self,
        cluster: &str,
        merge_dir: &str,
    ) -> Result<serde_json::Value, String> {
        let rt = self
            .clusters
            .get(cluster)
            .ok_or_else(|| format!("no cluster {cluster:?}"))?;
        let r = rt
            .committer
            .rollback(merge_dir)
            .await
            .map_err(|e| e.to_string())?;
        self.audit.record(
            0,
            "rolled_back",
            json!({ "cluster": cluster, "merge_dir": merge_dir, "action": r.action }),
        );
        Ok(json!({ "cluster": cluster, "merge_dir": merge_dir, "action": r.action }))
    }

    async fn send(
        &self,
        job: &JobRecord,
        session: &mut Hs2Session,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        self.audit
            .record(job.id, "statement", json!({ "sql": sql }));
        session
            .execute_update(sql, cancel)
            .await
            .map_err(|e| hs2_error(&e))
    }

    async fn count(
        &self,
        job: &JobRecord,
        session: &mut Hs2Session,
        sql: &str,
    ) -> Result<i64, StepError> {
        self.audit
            .record(job.id, "statement", json!({ "sql": sql }));
        let r = session
            .execute(sql, &CancellationToken::new())
            .await
            .map_err(|e| hs2_error(&e))?;
        match r.rows.first().and_then(|row| row.first()) {
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| ("engine", format!("count(*) returned {s:?}"), false)),
            other => Err(("engine", format!("count(*) returned {other:?}"), false)),
        }
    }
}

fn statements_preview(p: &MergePlan, extra: &[String]) -> Vec<String> {
    let mut out = p.setup.clone();
    for part in &p.partitions {
        out.push(p.count_statement(part));
        out.push(p.merge_statement(part));
        out.push(p.count_statement(part));
        out.extend(p.post_statements(part, extra));
    }
    out
}

/// Lists a table's partitions (or the table itself) now. `only`: just these partition names.
async fn list_partitions(
    rt: &ClusterRuntime,
    table: &TableMeta,
    only: Option<&BTreeSet<String>>,
) -> Result<Vec<PartitionState>, StepError> {
    let scheme = rt.config.storage.location_scheme();
    let targets: Vec<(String, Vec<String>, Option<String>)> = if table.is_partitioned() {
        table
            .partitions
            .iter()
            .filter(|p| only.is_none_or(|o| o.contains(&p.name)))
            .map(|p| (p.name.clone(), p.values.clone(), p.location.clone()))
            .collect()
    } else {
        vec![(String::new(), Vec::new(), table.location.clone())]
    };
    let fs = Arc::clone(&rt.fs);
    let small = u64::MAX;
    let results: Vec<Result<Option<PartitionState>, StepError>> = futures::stream::iter(targets)
        .map(|(name, values, location)| {
            let fs = Arc::clone(&fs);
            let scheme = scheme.clone();
            async move {
                let Some(ResolvedLocation::Path(path)) =
                    location.map(|l| resolve_location(&l, &scheme))
                else {
                    return Ok(None);
                };
                match walk_tree(fs.as_ref(), &path, None, &DirCache::with_capacity(0), small).await
                {
                    Ok(w) => Ok(Some(PartitionState {
                        path: Some(path),
                        name,
                        values,
                        files: w.counts.files,
                        bytes: w.counts.bytes,
                        newest_file_ms: w.counts.newest_modification_ms,
                    })),
                    Err(FsError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(("storage", e.to_string(), e.is_retryable())),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut out = Vec::new();
    for r in results {
        if let Some(p) = r? {
            out.push(p);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[async_trait::async_trait]
impl JobRunner for MergeRunner {
    async fn run(
        &self,
        job: &JobRecord,
        budget: &dyn ByteBudget,
        cancel: &CancellationToken,
    ) -> JobOutcome {
        self.audit.record(
            job.id,
            "started",
            json!({ "table": &job.item.key, "attempt": job.attempts, "dry_run": job.item.dry_run }),
        );
        let outcome = match self.run_job(job, budget, cancel).await {
            Ok(o) => o,
            Err(e) => self.fail(job, e),
        };
        self.audit
            .record(job.id, "finished", json!({ "outcome": &outcome }));
        outcome
    }

    async fn rollback(&self, job: &JobRecord) -> Result<serde_json::Value, String> {
        let committed: Vec<(String, String)> = self
            .audit
            .events_of(job.id)
            .iter()
            .filter(|e| e["event"] == "committed")
            .filter_map(|e| {
                Some((
                    e["cluster"].as_str()?.to_owned(),
                    e["report"]["merge_dir"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if committed.is_empty() {
            return Err(format!("job {} committed no staged merge", job.id));
        }
        let mut results = Vec::new();
        for (cluster, dir) in committed.iter().rev() {
            let r = match self.clusters.get(cluster) {
                Some(rt) => rt.committer.rollback(dir).await.map_err(|e| e.to_string()),
                None => Err(format!("no cluster {cluster:?}")),
            };
            self.audit.record(job.id, "rollback", json!({ "merge_dir": dir, "result": r.as_ref().map(|r| r.action).map_err(Clone::clone) }));
            results.push(json!({ "merge_dir": dir, "action": r.as_ref().ok().map(|r| r.action), "error": r.err() }));
        }
        Ok(json!({ "job": job.id, "rollbacks": results }))
    }

    async fn preview(&self, key: &TableKey) -> Result<serde_json::Value, String> {
        let rt = self.cluster(key).map_err(|e| e.1)?;
        let now = self
            .read_now(rt, key, None)
            .await
            .map_err(|e| e.1)?
            .ok_or_else(|| format!("{key} is not in the MetaStore"))?;
        let requested = BTreeSet::new();
        Ok(match plan(&now.plan_input(rt, &requested), &self.policy) {
            Ok(p) => json!({
                "table": key,
                "executor": match p.strategy {
                    Strategy::Native => "native",
                    Strategy::EngineStaged => "engine_staged",
                    _ => "engine",
                },
                "executor_reason": &p.executor_reason,
                "plan": &p,
                "statements": statements_preview(&p, &rt.config.post_merge_statements),
            }),
            Err(s) => json!({ "table": key, "skip": { "reason": s.reason, "detail": s.detail } }),
        })
    }
}

/// Engine-staged writing: the engine rewrites the partition into the staging `output/`
/// directory; its `count(*)` before is what the output must hold.
struct EngineWriter<'a> {
    runner: &'a MergeRunner,
    job: &'a JobRecord,
    plan: &'a MergePlan,
    part: &'a PlannedPartition,
    session: &'a Mutex<Option<Hs2Session>>,
    uri_prefix: String,
    verify_as: VerifyAs,
}

#[async_trait::async_trait]
impl StageWriter for EngineWriter<'_> {
    async fn write(
        &self,
        _fs: &Arc<dyn FileSystemWrite>,
        _target: &Target,
        _listing: &Listing,
        output: &str,
        _spool: &std::path::Path,
    ) -> Result<Staged, NativeError> {
        let engine_error = |(kind, message, retryable): StepError| NativeError::Engine {
            message: format!("{kind}: {message}"),
            retryable,
        };
        let mut guard = self.session.lock().await;
        let session = guard.as_mut().ok_or_else(|| NativeError::Engine {
            message: "no hiveserver2 configured".to_owned(),
            retryable: false,
        })?;
        let rows = self
            .runner
            .count(self.job, session, &self.plan.count_statement(self.part))
            .await
            .map_err(engine_error)?;
        let directory = format!("{}{output}", self.uri_prefix);
        let never = CancellationToken::new();
        self.runner
            .send(
                self.job,
                session,
                &self.plan.staged_statement(self.part, &directory),
                &never,
            )
            .await
            .map_err(engine_error)?;
        Ok(Staged {
            writer: Writer::EngineStaged,
            format: None,
            expected_rows: u64::try_from(rows).unwrap_or(0),
            verify_as: self.verify_as,
        })
    }
}
