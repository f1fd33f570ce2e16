//! In-place engine merges (`INSERT OVERWRITE`, `CONCATENATE`, `COMPACT`): per partition,
//! count rows, run the merge, count again (a difference stops the job), post statements;
//! and the statements sent over one HiveServer2 session.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::*;

impl MergeRunner {
    /// Runs the plan; returns how many partitions were merged.
    pub(super) async fn execute(
        &self,
        job: &JobRecord,
        rt: &ClusterRuntime,
        p: &MergePlan,
        cancel: &CancellationToken,
    ) -> Result<usize, StepError> {
        let hs2 = rt.config.hiveserver2.as_ref().ok_or_else(|| {
            StepError::new(StepErrorKind::NoEngine, "no hiveserver2 configured", false)
        })?;
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
                    self.audit.record(job.id, &JobEvent::Stopped { reason: "cancelled", merged_partitions: merged });
                    break;
                }
                let started = Instant::now();
                let before = if p.verifies_row_counts() { Some(self.count(job, &mut session, &p.count_statement(part)).await?) } else { None };
                for stmt in p.partition_setup(part) {
                    self.send(job, &mut session, &stmt, &never).await?;
                }
                // A merge statement is never cancelled half-way: the engine's commit is its own.
                self.send(job, &mut session, &p.merge_statement(part), &never).await?;
                if let Some(before) = before {
                    let after = self.count(job, &mut session, &p.count_statement(part)).await?;
                    self.audit.record(job.id, &JobEvent::RowCount { partition: &part.name, before, after });
                    if before != after {
                        return Err(StepError::new(
                            StepErrorKind::RowCountMismatch,
                            format!("partition {:?}: {before} rows before the merge, {after} after; stopped", part.name),
                            false,
                        ));
                    }
                }
                for stmt in p.post_statements(part, &rt.config.post_merge_statements) {
                    self.send(job, &mut session, &stmt, &never).await?;
                }
                self.audit.record(job.id, &JobEvent::PartitionMerged { partition: &part.name, seconds: started.elapsed().as_secs_f64() });
                merged += 1;
            }
            Ok(merged)
        }
        .await;
        let _ = session.close().await;
        result
    }

    pub(super) async fn send(
        &self,
        job: &JobRecord,
        session: &mut Hs2Session,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        self.audit.record(job.id, &JobEvent::Statement { sql });
        session
            .execute_update(sql, cancel)
            .await
            .map_err(|e| hs2_error(&e))
    }

    pub(super) async fn count(
        &self,
        job: &JobRecord,
        session: &mut Hs2Session,
        sql: &str,
    ) -> Result<i64, StepError> {
        self.audit.record(job.id, &JobEvent::Statement { sql });
        let r = session
            .execute(sql, &CancellationToken::new())
            .await
            .map_err(|e| hs2_error(&e))?;
        match r.rows.first().and_then(|row| row.first()) {
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::String(s)) => s.parse().map_err(|_| {
                StepError::new(
                    StepErrorKind::Engine,
                    format!("count(*) returned {s:?}"),
                    false,
                )
            }),
            other => Err(StepError::new(
                StepErrorKind::Engine,
                format!("count(*) returned {other:?}"),
                false,
            )),
        }
    }
}
