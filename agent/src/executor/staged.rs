//! Staged merges (native and engine-staged): per partition, the commit protocol of
//! [`crate::native`]; the engine-staged writer has the engine rewrite the partition into
//! the staging `output/` directory.

use std::sync::Arc;
use std::time::Instant;

use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::fs::{ResolvedLocation, resolve_location};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::locations::{EngineLocations, uri_prefix};
use super::*;
use crate::native::SwitchTarget;
use crate::policy::{CommitMode, commit_mode};

impl MergeRunner {
    /// Native and engine-staged merges: per partition, the commit protocol; afterwards the
    /// post-merge statements when an engine is configured.
    pub(super) async fn execute_staged(
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
            let (mode, _) = commit_mode(&self.policy, &now.table, rt.config.hiveserver2.is_some());
            let locations = EngineLocations {
                rt,
                session: Some(&session),
            };
            let switch = (mode == CommitMode::Switch).then(|| SwitchTarget {
                locations: &locations,
                table_root: now.table.location.as_deref().and_then(|l| {
                    match resolve_location(l, &rt.config.storage.location_scheme()) {
                        ResolvedLocation::Path(p) => Some(p),
                        _ => None,
                    }
                }),
            });
            let mut reports: Vec<MergeReport> = Vec::new();
            for part in &p.partitions {
                if cancel.is_cancelled() {
                    self.audit.record(
                        job.id,
                        &JobEvent::Stopped {
                            reason: "cancelled",
                            merged_partitions: reports.len(),
                        },
                    );
                    break;
                }
                let Some(path) = part.path.clone() else {
                    return Err(StepError::new(
                        StepErrorKind::Storage,
                        format!("partition {:?} has no resolvable location", part.name),
                        false,
                    ));
                };
                let target = Target {
                    cluster: rt.config.name.clone(),
                    table: format!("{}.{}", now.table.database, now.table.name),
                    partition: part.name.clone(),
                    path,
                };
                let started = Instant::now();
                let report = if p.strategy == Strategy::Native {
                    let format = native_format(&now.table).map_err(|s| {
                        StepError::new(StepErrorKind::Refused(s.reason), s.detail, false)
                    })?;
                    let writer = NativeWriter {
                        format,
                        target_bytes: rt.config.target_file_bytes,
                    };
                    rt.committer
                        .merge(job.id, &target, &writer, switch.as_ref())
                        .await
                } else {
                    let location = if part.name.is_empty() {
                        now.table.location.clone()
                    } else {
                        now.table
                            .partitions
                            .iter()
                            .find(|x| x.name == part.name)
                            .and_then(|x| x.location.clone())
                    };
                    let writer = EngineWriter {
                        runner: self,
                        job,
                        plan: p,
                        part,
                        session: &session,
                        uri_prefix: uri_prefix(location.as_deref().unwrap_or_default()),
                        verify_as: match now.table.class().format {
                            hive_smallfiles_core::metastore::FileFormat::Parquet => {
                                VerifyAs::Parquet
                            }
                            hive_smallfiles_core::metastore::FileFormat::Orc => VerifyAs::Orc,
                            _ => VerifyAs::Text,
                        },
                    };
                    rt.committer
                        .merge(job.id, &target, &writer, switch.as_ref())
                        .await
                };
                let report = match report {
                    Ok(r) => r,
                    Err(e) => {
                        self.metrics
                            .native_failures
                            .get_or_create(&ReasonLabels {
                                reason: e.reason().to_owned(),
                            })
                            .inc();
                        self.audit.record(
                            job.id,
                            &JobEvent::PartitionFailed {
                                partition: &part.name,
                                reason: e.reason(),
                                error: e.to_string(),
                                merged_partitions: reports.len(),
                            },
                        );
                        return Err(native_error(&e));
                    }
                };
                self.audit.record(
                    job.id,
                    &JobEvent::Committed {
                        cluster: &rt.config.name,
                        partition: &part.name,
                        report: &report,
                        seconds: started.elapsed().as_secs_f64(),
                    },
                );
                self.store.add_commit(
                    job.id,
                    CommittedMerge {
                        cluster: rt.config.name.clone(),
                        partition: part.name.clone(),
                        merge_dir: report.merge_dir.clone(),
                    },
                );
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
            // The loop ends early without an error only when the job was told to stop.
            stopped_early: reports.len() < p.partitions.len(),
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
        let engine_error = |e: StepError| NativeError::Engine {
            retryable: e.is_retryable(),
            message: e.to_string(),
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
        for stmt in self.plan.partition_setup(self.part) {
            self.runner
                .send(self.job, session, &stmt, &never)
                .await
                .map_err(engine_error)?;
        }
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
