//! Recovery of interrupted staged merges on every cluster, and rollback of one merge
//! directory by hand.

use std::collections::BTreeSet;

use hive_smallfiles_core::fs::{ResolvedLocation, resolve_location};
use serde_json::json;

use super::*;

impl MergeRunner {
    /// Every staging area under the allowed tables of every cluster, recovered: interrupted
    /// merges rolled forward or back, expired backups and abandoned staging removed.
    pub async fn recover_all(&self) -> Vec<RecoveryEntry> {
        let mut out = Vec::new();
        let entry = |cluster: &str| RecoveryEntry {
            cluster: cluster.to_owned(),
            area: None,
            merge_dir: None,
            action: None,
            error: None,
        };
        for (name, rt) in &self.clusters {
            let parents = match self.staging_parents(rt).await {
                Ok(p) => p,
                Err(e) => {
                    out.push(RecoveryEntry {
                        error: Some(e.message),
                        ..entry(name)
                    });
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
                            out.push(RecoveryEntry {
                                area: Some(area.clone()),
                                merge_dir: Some(r.merge_dir),
                                action: Some(r.action),
                                error: r.error,
                                ..entry(name)
                            });
                        }
                    }
                    Err(e) => {
                        out.push(RecoveryEntry {
                            area: Some(area.clone()),
                            error: Some(e.to_string()),
                            ..entry(name)
                        });
                    }
                }
            }
        }
        let unrecovered = out.iter().filter(|e| e.error.is_some()).count();
        self.metrics
            .unrecovered
            .set(i64::try_from(unrecovered).unwrap_or(i64::MAX));
        self.metrics.recovery_last_run.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        for e in out.iter().filter(|e| e.error.is_some()) {
            tracing::error!(
                cluster = %e.cluster,
                area = e.area.as_deref().unwrap_or("-"),
                merge_dir = e.merge_dir.as_deref().unwrap_or("-"),
                error = e.error.as_deref().unwrap_or(""),
                "An interrupted merge could not be recovered; its partition may be missing until it is."
            );
        }
        self.audit.record(0, &JobEvent::Recovery { results: &out });
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
            &JobEvent::RolledBack {
                cluster,
                merge_dir,
                action: r.action,
            },
        );
        Ok(json!({ "cluster": cluster, "merge_dir": merge_dir, "action": r.action }))
    }
}
