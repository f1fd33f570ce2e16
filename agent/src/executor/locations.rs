//! The MetaStore side of switch commits on one cluster: where a partition points (read from
//! the MetaStore) and switching it with `ALTER TABLE … SET LOCATION` through the cluster's
//! engine — never by writing to the MetaStore database.

use hive_smallfiles_core::fs::{ResolvedLocation, resolve_location};
use hive_smallfiles_core::metastore::TableMeta;

use super::*;
use crate::sql;

/// `hdfs://ns1` of `hdfs://ns1/w/t`, `file:` of `file:/w/t`, empty for a bare path: what is
/// put before a path to give the engine a URI on the table's own filesystem.
pub(super) fn uri_prefix(location: &str) -> String {
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

/// `ALTER TABLE … [PARTITION (…)] SET LOCATION '…'` (pure).
pub(super) fn set_location_statement(
    engine: sql::Engine,
    table: &TableMeta,
    values: &[String],
    uri: &str,
) -> String {
    let part = if table.partition_keys.is_empty() {
        String::new()
    } else {
        let spec: Vec<(String, String)> = table
            .partition_keys
            .iter()
            .map(|k| k.name.clone())
            .zip(values.iter().cloned())
            .collect();
        format!(" PARTITION ({})", sql::partition_spec(&spec, engine))
    };
    format!(
        "ALTER TABLE {}{part} SET LOCATION {}",
        sql::qualified(&table.database, &table.name),
        sql::string_literal(uri, engine)
    )
}

/// [`Locations`](crate::native::Locations) through one cluster's MetaStore and engine. With
/// a job's session the switch runs in it; otherwise each switch opens its own.
pub(super) struct EngineLocations<'a> {
    pub(super) rt: &'a ClusterRuntime,
    pub(super) session: Option<&'a Mutex<Option<Hs2Session>>>,
}

impl<'a> EngineLocations<'a> {
    /// Locations for start-up recovery and rollbacks: each switch opens its own session.
    pub(super) fn detached(rt: &'a ClusterRuntime) -> Self {
        EngineLocations { rt, session: None }
    }

    /// These locations as the committer takes them: none when the cluster has no engine to
    /// switch a location through (its merges can only have been swaps).
    pub(super) fn if_engine(&self) -> Option<&dyn crate::native::Locations> {
        self.rt
            .config
            .hiveserver2
            .is_some()
            .then_some(self as &dyn crate::native::Locations)
    }

    async fn table(&self, table: &str) -> Result<TableMeta, NativeError> {
        let (database, name) = table.split_once('.').unwrap_or(("default", table));
        let ms = self.rt.metastore().await.map_err(|e| Self::ms(&e))?;
        match ms.read_table("hive", database, name).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(NativeError::Inconsistent(format!(
                "{table} is not in the MetaStore"
            ))),
            Err(e) => {
                if e.is_retryable() {
                    self.rt.forget_metastore().await;
                }
                Err(Self::ms(&e))
            }
        }
    }

    fn ms(e: &MetastoreError) -> NativeError {
        NativeError::Engine {
            message: format!("MetaStore: {e}"),
            retryable: e.is_retryable(),
        }
    }

    /// The table's location string and the partition's values and location string.
    fn find<'t>(t: &'t TableMeta, partition: &str) -> Option<(&'t [String], Option<&'t String>)> {
        if partition.is_empty() {
            return (!t.is_partitioned()).then_some((&[][..], t.location.as_ref()));
        }
        t.partitions
            .iter()
            .find(|p| p.name == partition)
            .map(|p| (&p.values[..], p.location.as_ref()))
    }
}

#[async_trait::async_trait]
impl crate::native::Locations for EngineLocations<'_> {
    async fn current(&self, table: &str, partition: &str) -> Result<Option<String>, NativeError> {
        let t = match self.table(table).await {
            Ok(t) => t,
            Err(NativeError::Inconsistent(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let scheme = self.rt.config.storage.location_scheme();
        Ok(Self::find(&t, partition)
            .and_then(|(_, l)| l)
            .and_then(|l| match resolve_location(l, &scheme) {
                ResolvedLocation::Path(p) => Some(p),
                _ => None,
            }))
    }

    async fn switch(&self, table: &str, partition: &str, to: &str) -> Result<(), NativeError> {
        let t = self.table(table).await?;
        let (values, _) = Self::find(&t, partition).ok_or_else(|| {
            NativeError::Inconsistent(format!("{table} has no partition {partition:?}"))
        })?;
        let uri = format!(
            "{}{to}",
            uri_prefix(t.location.as_deref().unwrap_or_default())
        );
        let stmt = set_location_statement(self.rt.config.engine, &t, values, &uri);
        let engine_error = |e: &Hs2Error| NativeError::Engine {
            message: format!("{stmt}: {e}"),
            retryable: e.is_retryable(),
        };
        let never = CancellationToken::new();
        tracing::info!(table, partition, to, "Switching the location.");
        if let Some(shared) = self.session {
            if let Some(s) = shared.lock().await.as_mut() {
                return s
                    .execute_update(&stmt, &never)
                    .await
                    .map(|_| ())
                    .map_err(|e| engine_error(&e));
            }
        }
        let cfg = self
            .rt
            .config
            .hiveserver2
            .as_ref()
            .ok_or_else(|| NativeError::Engine {
                message: "no hiveserver2 configured to switch locations".to_owned(),
                retryable: false,
            })?;
        let mut s = Hs2Session::open(cfg).await.map_err(|e| engine_error(&e))?;
        let r = s.execute_update(&stmt, &never).await.map(|_| ());
        let _ = s.close().await;
        r.map_err(|e| engine_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_prefixes() {
        assert_eq!(uri_prefix("hdfs://ns1/w/t"), "hdfs://ns1");
        assert_eq!(uri_prefix("file:/w/t"), "file:");
        assert_eq!(uri_prefix("/w/t"), "");
    }
}
