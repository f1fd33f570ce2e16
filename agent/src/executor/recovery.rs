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
            let engine = super::locations::EngineLocations::detached(rt);
            let locations = engine.if_engine();
            for (area, result) in rt.committer.recover_in(&parents, locations).await {
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
            let resolve =
                |l: &Option<String>| match l.as_deref().map(|l| resolve_location(l, &scheme)) {
                    Some(ResolvedLocation::Path(p)) => Some(p),
                    _ => None,
                };
            let root = resolve(&t.location);
            if t.is_partitioned() {
                for p in &t.partitions {
                    let location = resolve(&p.location);
                    parents.extend(staging_parents_of(
                        root.as_deref(),
                        &p.name,
                        location.as_deref(),
                    ));
                }
            } else {
                parents.extend(staging_parents_of(None, "", root.as_deref()));
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
        let engine = super::locations::EngineLocations::detached(rt);
        let locations = engine.if_engine();
        let r = rt
            .committer
            .rollback(merge_dir, locations)
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

/// The directories where a partition's staging areas can be (pure): beside where it points
/// now, and — after switch commits moved it — beside where Hive's layout puts it
/// (`<table>/<partition name>`) and, for an unpartitioned table switched into
/// `<parent>/.hive-smallfiles-merged.<leaf>/`, beside its first directory.
fn staging_parents_of(
    table_root: Option<&str>,
    partition: &str,
    location: Option<&str>,
) -> Vec<String> {
    use hive_smallfiles_core::fs::{join_path, parent_path};
    let mut out = Vec::new();
    if let Some(l) = location {
        let parent = parent_path(l);
        out.push(parent.to_owned());
        let leaf = parent.rsplit('/').next().unwrap_or_default();
        if partition.is_empty()
            && leaf.starts_with(&format!("{}.", crate::native::layout::MERGED_DIR))
        {
            out.push(parent_path(parent).to_owned());
        }
    }
    if let Some(root) = table_root.filter(|_| !partition.is_empty()) {
        out.push(parent_path(&join_path(root, partition)).to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::staging_parents_of;

    #[test]
    fn staging_areas_are_found_where_switch_commits_leave_them() {
        assert_eq!(
            staging_parents_of(Some("/w/t"), "ds=1", Some("/w/t/ds=1")),
            ["/w/t", "/w/t"]
        );
        assert_eq!(
            staging_parents_of(
                Some("/w/t"),
                "a=1/b=2",
                Some("/w/t/.hive-smallfiles-merged/a=1/b=2-m1")
            ),
            ["/w/t/.hive-smallfiles-merged/a=1", "/w/t/a=1"]
        );
        assert_eq!(
            staging_parents_of(None, "", Some("/w/db/.hive-smallfiles-merged.t/m1")),
            ["/w/db/.hive-smallfiles-merged.t", "/w/db"]
        );
        assert_eq!(staging_parents_of(None, "", Some("/w/db/t")), ["/w/db"]);
    }
}
