//! The table as it is now: re-read from the live MetaStore (alert labels are never
//! trusted) and its partitions listed, as the planner's input.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use hive_smallfiles_core::fs::{FsError, ResolvedLocation, resolve_location};
use hive_smallfiles_core::metastore::{MetastoreError, TableMeta};
use hive_smallfiles_core::walk::{DirCache, walk_tree};

use super::*;
use crate::plan::ListedCompression;

/// A table as read and listed now.
pub(super) struct TableNow {
    pub(super) table: TableMeta,
    pub(super) columns: Vec<hive_smallfiles_core::metastore::Column>,
    pub(super) partitions: Vec<PartitionState>,
    pub(super) hive3: bool,
}

impl TableNow {
    /// The planner's input for this table on this cluster, now.
    pub(super) fn plan_input<'a>(
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
    /// Reads the table from the MetaStore and lists its partitions. `None`: table not found.
    pub(super) async fn read_now(
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
}

/// Lists a table's partitions (or the table itself) now. `only`: just these partition names.
pub(super) async fn list_partitions(
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
                        compression: ListedCompression::of(&w.counts),
                    })),
                    Err(FsError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(StepError::new(
                        StepErrorKind::Storage,
                        e.to_string(),
                        e.is_retryable(),
                    )),
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
