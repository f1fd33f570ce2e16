//! The merge executor: the [`JobRunner`] that carries out one job through the cluster's SQL
//! engine over the HiveServer2 protocol.
//!
//! Steps, each recorded in the audit log: re-read the table from the live MetaStore (alert
//! labels are never trusted), rescan its partitions, plan ([`crate::plan`], which applies the
//! policy), take one merge start and the plan's bytes from the rate limits (nothing is
//! taken by jobs that end before this step), then per partition: count rows, run the merge, count
//! rows again — a difference stops the job and is reported — and run the post-merge
//! statements; finally rescan to record files after. Cancellation is honoured only between
//! partitions, never in the middle of a merge statement.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use hive_smallfiles_core::fs::factory::write_filesystem;
use hive_smallfiles_core::fs::webhdfs::WebHdfsMetrics;
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::metastore::{Metastore, MetastoreError};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::config::{AgentCluster, NativeSettings};
use crate::events::{JobEvent, RecoveryEntry};
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
use crate::store::{CommittedMerge, JobStore, MemoryStore};
use crate::work::{JobOutcome, JobRecord, JobRunner, MergeBudget, TableKey};

mod engine;
mod error;
mod locations;
mod recovery;
mod staged;
mod table;

pub use error::{StepError, StepErrorKind};
use table::TableNow;

/// Jobs whose committed merges an in-memory store remembers by default.
const DEFAULT_HISTORY: usize = 1000;

/// One cluster's connections.
#[derive(Debug)]
struct ClusterRuntime {
    config: AgentCluster,
    fs: Arc<dyn FileSystemWrite>,
    committer: Committer,
    metastore: Mutex<Option<Arc<Metastore>>>,
}

fn ms_error(e: &MetastoreError) -> StepError {
    StepError::new(StepErrorKind::Metastore, e.to_string(), e.is_retryable())
}

fn hs2_error(e: &Hs2Error) -> StepError {
    StepError::new(StepErrorKind::Engine, e.to_string(), e.is_retryable())
}

fn native_error(e: &NativeError) -> StepError {
    StepError::new(
        StepErrorKind::Staged(e.reason()),
        e.to_string(),
        e.is_retryable(),
    )
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
    store: Arc<dyn JobStore>,
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
                    switch_grace: native.switch_grace,
                    switch_settle: native.switch_settle,
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
            store: Arc::new(MemoryStore::new(DEFAULT_HISTORY)),
        })
    }

    /// Records committed merges in `store` (shared with the queue) instead of its own.
    #[must_use]
    pub fn with_store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = store;
        self
    }

    /// Where this runner records committed merges (hand it to the queue too).
    pub fn store(&self) -> Arc<dyn JobStore> {
        Arc::clone(&self.store)
    }

    /// The agent's metrics this runner records into.
    pub fn metrics(&self) -> Arc<AgentMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Every cluster's filesystem client, by cluster (to close them at shutdown).
    pub fn filesystems(&self) -> Vec<(String, Arc<dyn FileSystemWrite>)> {
        self.clusters
            .iter()
            .map(|(name, c)| (name.clone(), Arc::clone(&c.fs)))
            .collect()
    }

    /// The id after the highest one in the audit log.
    pub fn first_job_id(&self) -> u64 {
        self.audit.max_job_id() + 1
    }

    fn cluster(&self, key: &TableKey) -> Result<&ClusterRuntime, StepError> {
        self.clusters.get(&key.cluster).ok_or_else(|| {
            StepError::new(
                StepErrorKind::UnknownCluster,
                format!("no cluster {:?} configured", key.cluster),
                false,
            )
        })
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
            &JobEvent::Skipped {
                reason: s.reason,
                detail: &s.detail,
            },
        );
        JobOutcome::Skipped {
            reason: s.reason.to_owned(),
            detail: s.detail.clone(),
        }
    }

    fn fail(&self, job: &JobRecord, e: StepError) -> JobOutcome {
        self.audit.record(
            job.id,
            &JobEvent::Failed {
                kind: e.kind.as_str(),
                error: &e.message,
                retryable: e.is_retryable(),
            },
        );
        JobOutcome::Failed {
            kind: e.kind.as_str().to_owned(),
            retryable: e.is_retryable(),
            error: e.message,
        }
    }

    async fn run_job(
        &self,
        job: &JobRecord,
        budget: &dyn MergeBudget,
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
        self.audit.record(
            job.id,
            &JobEvent::Planned {
                plan: &merge_plan,
                source: job.item.source,
                fingerprints: &job.item.fingerprints,
            },
        );
        let files_before: u64 = merge_plan.partitions.iter().map(|p| p.files).sum();
        let parts = merge_plan.partitions.len() as u32;
        if job.item.dry_run || self.policy.dry_run {
            self.audit.record(
                job.id,
                &JobEvent::DryRun {
                    statements: statements_preview(&merge_plan, &rt.config.post_merge_statements),
                },
            );
            return Ok(JobOutcome::DryRun {
                strategy: merge_plan.strategy.as_str().to_owned(),
                partitions: parts,
            });
        }
        // The merge really starts here: the only place a job takes from the rate limits.
        if let Err(r) = budget.try_start(&key.cluster, merge_plan.total_bytes) {
            return Err(StepError::new(
                StepErrorKind::RateLimited,
                format!(
                    "{} limit reached; the job is re-queued for {}s",
                    r.limit,
                    r.wait.as_secs()
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
        self.audit.record(
            job.id,
            &JobEvent::Rescanned {
                files_before: before,
                files_after: after,
                files_before_all_planned: files_before,
            },
        );
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
            // The loop ends early without an error only when the job was told to stop.
            stopped_early: merged < merge_plan.partitions.len(),
        })
    }
}

fn statements_preview(p: &MergePlan, extra: &[String]) -> Vec<String> {
    let mut out = p.setup.clone();
    for part in &p.partitions {
        out.push(p.count_statement(part));
        out.extend(p.partition_setup(part));
        out.push(p.merge_statement(part));
        out.push(p.count_statement(part));
        out.extend(p.post_statements(part, extra));
    }
    out
}

#[async_trait::async_trait]
impl JobRunner for MergeRunner {
    async fn run(
        &self,
        job: &JobRecord,
        budget: &dyn MergeBudget,
        cancel: &CancellationToken,
    ) -> JobOutcome {
        self.audit.record(
            job.id,
            &JobEvent::Started {
                table: &job.item.key,
                attempt: job.attempts,
                dry_run: job.item.dry_run,
            },
        );
        let outcome = match self.run_job(job, budget, cancel).await {
            Ok(o) => o,
            Err(e) => self.fail(job, e),
        };
        self.audit
            .record(job.id, &JobEvent::Finished { outcome: &outcome });
        outcome
    }

    async fn rollback(&self, job: &JobRecord) -> Result<serde_json::Value, String> {
        let committed = self.store.commits(job.id);
        if committed.is_empty() {
            return Err(format!("job {} committed no staged merge", job.id));
        }
        let mut results = Vec::new();
        for merge in committed.iter().rev() {
            let dir = merge.merge_dir.as_str();
            let r = match self.clusters.get(&merge.cluster) {
                Some(rt) => {
                    let engine = locations::EngineLocations::detached(rt);
                    let locations = engine.if_engine();
                    rt.committer
                        .rollback(dir, locations)
                        .await
                        .map_err(|e| e.to_string())
                }
                None => Err(format!("no cluster {:?}", merge.cluster)),
            };
            self.audit.record(
                job.id,
                &JobEvent::Rollback {
                    merge_dir: dir,
                    result: r.as_ref().map(|r| r.action).map_err(Clone::clone),
                },
            );
            results.push(json!({ "merge_dir": dir, "action": r.as_ref().ok().map(|r| r.action), "error": r.err() }));
        }
        Ok(json!({ "job": job.id, "rollbacks": results }))
    }

    async fn preview(&self, key: &TableKey) -> Result<serde_json::Value, String> {
        let rt = self.cluster(key).map_err(|e| e.message)?;
        let now = self
            .read_now(rt, key, None)
            .await
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("{key} is not in the MetaStore"))?;
        let requested = BTreeSet::new();
        let (commit, commit_reason) =
            crate::policy::commit_mode(&self.policy, &now.table, rt.config.hiveserver2.is_some());
        Ok(match plan(&now.plan_input(rt, &requested), &self.policy) {
            Ok(p) => json!({
                "commit": matches!(p.strategy, Strategy::Native | Strategy::EngineStaged).then_some(commit),
                "commit_reason": matches!(p.strategy, Strategy::Native | Strategy::EngineStaged).then_some(commit_reason),
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
