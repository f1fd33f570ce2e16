//! The exporter's configuration file: raw TOML (every field documented, every field with a
//! default) validated once at start-up into typed values.
//!
//! Two stages, as in ripgrep's low/high args: [`RawConfig`] is what serde reads; [`Config`]
//! is what the rest of the program uses (URLs parsed, secrets read from files or the
//! environment, globs compiled, sizes and durations checked). Secrets never come from URLs.
//! The annotated example file `deploy/exporter.example.toml` mirrors this module.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use hive_smallfiles_core::config::{
    ByteSize, ConfigError, DEFAULT_SMALL_FILE_BYTES, Environment, RawMetastore, RawStorage,
    StorageConfig, TableFilter, invalid,
};
use hive_smallfiles_core::kerberos::{KerberosConfig, RawKerberos};
use hive_smallfiles_core::metastore::MetastoreConfig;
use hive_smallfiles_core::web::ServerSettings;
use serde::Deserialize;

use crate::shard::Shard;

// === raw config ===

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// One entry per cluster.
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<RawCluster>,
    /// `[server]`: HTTP timeouts and the connection cap.
    #[serde(default)]
    pub server: ServerSettings,
}

/// `[[cluster]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Cluster name, the `cluster` label. Required, unique.
    pub name: String,
    /// The MetaStore's backing database.
    pub metastore: RawMetastore,
    /// Where the warehouse files live.
    pub storage: RawStorage,
    /// `[cluster.kerberos]`: the cluster's Kerberos login (secured clusters). Default: none.
    #[serde(default)]
    pub kerberos: Option<RawKerberos>,
    /// Files smaller than this are small (bytes or "128MiB"). Default 128 MiB.
    #[serde(default = "default_small")]
    pub small_file_bytes: ByteSize,
    /// Size a merge aims for per output file; drives `hive_table_excess_files`. Default 128 MiB.
    #[serde(default = "default_small")]
    pub target_file_bytes: ByteSize,
    /// Globs on `database.table` to scan (default: everything).
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Globs on `database.table` to skip, applied after `include` (default: none).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Time between scan starts. Default 15m.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub scan_interval: Duration,
    /// A scan running longer than this is abandoned (the previous snapshot stays). Default 10m.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub scan_timeout: Duration,
    /// Relist everything (ignore cached directory states) at least this often; catches appends
    /// to existing files, which do not change directory modification times. Default 24h.
    #[serde(default = "default_full_rescan", with = "humantime_serde")]
    pub full_rescan_interval: Duration,
    /// Directory listings in flight per cluster (tasks, not requests; WebHDFS requests are
    /// bounded separately by `max_concurrent_requests`). Default 64.
    #[serde(default = "default_list_concurrency")]
    pub list_concurrency: usize,
    /// Look for files below partitioned tables' locations that no partition points at
    /// (`hive_table_unreferenced_*`). Costs a listing of each multi-level table's location and
    /// the listings of what is found; single-level tables' locations are listed anyway.
    /// Default true.
    #[serde(default = "default_true")]
    pub unreferenced_files: bool,
    /// List Hive 3 materialized views (`TBLS.TBL_TYPE = MATERIALIZED_VIEW`): they have their
    /// own directories and files, written by every rebuild. When false they are counted as
    /// filtered with reason `materialized_view`. Default true.
    #[serde(default = "default_true")]
    pub materialized_views: bool,
    /// Partitions (or unpartitioned tables) whose newest file is younger than this are "hot":
    /// still being written. `hive_table_cold_*` count the others, the part a merge may touch
    /// now. Keep it equal to the agent's `quiet_period`. Default 1h.
    #[serde(default = "default_quiet_period", with = "humantime_serde")]
    pub quiet_period: Duration,
    /// Partitions of the whole cluster kept for drill-down (`hive_partition_*`), the worst by
    /// excess files. 0 turns the per-partition series off. Default 20.
    #[serde(default = "default_top_partitions")]
    pub top_partitions: usize,
    /// This replica's share of the tables, `"i/n"` (0-based): replica `i` of `n` scans the
    /// tables whose stable hash of cluster/database/table falls to it. Default: all tables.
    #[serde(default)]
    pub shard: Option<String>,
    /// `[cluster.series]`: which tables get per-table series. Default: every table while
    /// there are at most 5,000.
    #[serde(default)]
    pub series: RawSeries,
}

/// `[cluster.series]`: cardinality control. A table gets per-table series (`hive_table_*`)
/// when it passes the floors and is among the `max_tables` worst by excess files; the
/// per-database rollups (`hive_database_*`) always cover every scanned table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeries {
    /// Floor on `hive_table_excess_files`. Default 0 (no floor).
    #[serde(default)]
    pub min_excess_files: u64,
    /// Floor on the bytes held in small files (bytes or "1GiB"). Default 0 (no floor).
    #[serde(default = "zero_bytes")]
    pub min_small_file_bytes: ByteSize,
    /// At most this many tables get per-table series, the worst by excess files. Default 5000.
    #[serde(default = "default_max_tables")]
    pub max_tables: usize,
    /// Whether `hive_table_info` carries the `location` label. Default true.
    #[serde(default = "default_true")]
    pub location_label: bool,
}

impl Default for RawSeries {
    fn default() -> Self {
        Self {
            min_excess_files: 0,
            min_small_file_bytes: ByteSize(0),
            max_tables: default_max_tables(),
            location_label: true,
        }
    }
}

fn default_small() -> ByteSize {
    ByteSize(DEFAULT_SMALL_FILE_BYTES)
}
fn default_include() -> Vec<String> {
    vec!["*".to_owned()]
}
fn default_interval() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_full_rescan() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_list_concurrency() -> usize {
    64
}
fn default_true() -> bool {
    true
}
fn default_quiet_period() -> Duration {
    Duration::from_secs(3600)
}
fn default_top_partitions() -> usize {
    20
}
fn zero_bytes() -> ByteSize {
    ByteSize(0)
}
fn default_max_tables() -> usize {
    5000
}
/// Upper bound of `max_tables`: beyond it the cap is no cap (a million series).
const MAX_TABLES_LIMIT: usize = 1_000_000;
// === validated config ===

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Clusters, in file order.
    pub clusters: Vec<ClusterConfig>,
    /// HTTP timeouts and the connection cap.
    pub server: ServerSettings,
}

/// One validated cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster name.
    pub name: String,
    /// MetaStore connection.
    pub metastore: MetastoreConfig,
    /// Storage backend.
    pub storage: StorageConfig,
    /// Kerberos login of the cluster's clients, if secured.
    pub kerberos: Option<KerberosConfig>,
    /// Small-file threshold in bytes (exclusive: smaller than this is small).
    pub small_file_bytes: u64,
    /// Target output file size in bytes.
    pub target_file_bytes: u64,
    /// Which tables are scanned.
    pub filter: TableFilter,
    /// Time between scan starts.
    pub scan_interval: Duration,
    /// Maximum scan duration.
    pub scan_timeout: Duration,
    /// Maximum age of cached directory states.
    pub full_rescan_interval: Duration,
    /// Directory listings in flight.
    pub list_concurrency: usize,
    /// Whether the unreferenced-data view is on.
    pub unreferenced_files: bool,
    /// Whether materialized views are listed.
    pub materialized_views: bool,
    /// Partitions written to more recently than this are hot (not counted as cold).
    pub quiet_period: Duration,
    /// Worst partitions of the cluster kept for drill-down.
    pub top_partitions: usize,
    /// This replica's share of the tables; `None`: all.
    pub shard: Option<Shard>,
    /// Which tables get per-table series.
    pub series: SeriesConfig,
}

/// Validated `[cluster.series]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesConfig {
    /// Floor on excess files.
    pub min_excess_files: u64,
    /// Floor on bytes held in small files.
    pub min_small_file_bytes: u64,
    /// Cap on tables with per-table series.
    pub max_tables: usize,
    /// Whether `hive_table_info` carries `location`.
    pub location_label: bool,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self {
            min_excess_files: 0,
            min_small_file_bytes: 0,
            max_tables: default_max_tables(),
            location_label: true,
        }
    }
}

impl RawSeries {
    fn validate(self, cluster: &str) -> Result<SeriesConfig, ConfigError> {
        if self.max_tables > MAX_TABLES_LIMIT {
            return Err(invalid(
                cluster,
                format!("series.max_tables must be at most {MAX_TABLES_LIMIT}"),
            ));
        }
        Ok(SeriesConfig {
            min_excess_files: self.min_excess_files,
            min_small_file_bytes: self.min_small_file_bytes.0,
            max_tables: self.max_tables,
            location_label: self.location_label,
        })
    }
}

impl Config {
    /// Reads and validates a configuration file. Relative paths inside it are resolved
    /// against the file's directory.
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_toml(&text, base, env)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str, base: &Path, env: &dyn Environment) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        raw.validate(base, env)
    }
}

impl RawConfig {
    /// Validates into a [`Config`].
    pub fn validate(self, base: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        if self.clusters.is_empty() {
            return Err(invalid("-", "no [[cluster]] configured"));
        }
        self.server.validate().map_err(|m| invalid("-", m))?;
        let mut names = HashSet::new();
        let mut clusters = Vec::with_capacity(self.clusters.len());
        for raw in self.clusters {
            if !names.insert(raw.name.clone()) {
                return Err(invalid(&raw.name, "duplicate cluster name"));
            }
            clusters.push(raw.validate(base, env)?);
        }
        Ok(Config {
            clusters,
            server: self.server,
        })
    }
}

impl RawCluster {
    fn validate(self, base: &Path, env: &dyn Environment) -> Result<ClusterConfig, ConfigError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(invalid("", "cluster name is empty"));
        }
        let metastore = self.metastore.validate(&name, base, env)?;
        let kerberos = self
            .kerberos
            .map(|k| k.validate_cluster(&name, base))
            .transpose()?;
        let storage = self.storage.validate(&name, base, kerberos.as_ref())?;
        if self.small_file_bytes.0 == 0 {
            return Err(invalid(&name, "small_file_bytes must be > 0"));
        }
        if self.target_file_bytes.0 == 0 {
            return Err(invalid(&name, "target_file_bytes must be > 0"));
        }
        if self.scan_interval < Duration::from_secs(1) {
            return Err(invalid(&name, "scan_interval must be at least 1s"));
        }
        if self.scan_timeout.is_zero() {
            return Err(invalid(&name, "scan_timeout must be > 0"));
        }
        if self.list_concurrency == 0 {
            return Err(invalid(&name, "list_concurrency must be > 0"));
        }
        let filter =
            TableFilter::new(&self.include, &self.exclude).map_err(|m| invalid(&name, m))?;
        let shard = self
            .shard
            .as_deref()
            .map(str::parse::<Shard>)
            .transpose()
            .map_err(|m| invalid(&name, m))?;
        let series = self.series.validate(&name)?;
        Ok(ClusterConfig {
            name,
            metastore,
            storage,
            kerberos,
            small_file_bytes: self.small_file_bytes.0,
            target_file_bytes: self.target_file_bytes.0,
            filter,
            scan_interval: self.scan_interval,
            scan_timeout: self.scan_timeout,
            full_rescan_interval: self.full_rescan_interval,
            list_concurrency: self.list_concurrency,
            unreferenced_files: self.unreferenced_files,
            materialized_views: self.materialized_views,
            quiet_period: self.quiet_period,
            top_partitions: self.top_partitions,
            shard,
            series,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hive_smallfiles_core::metastore::Backend;

    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("HMS_PW".to_owned(), "s3cret".to_owned())])
    }

    const MINIMAL: &str = r#"
        [[cluster]]
        name = "prod"
        [cluster.metastore]
        url = "mysql://hive@db.example:3307/metastore"
        password_env = "HMS_PW"
        [cluster.storage]
        type = "webhdfs"
        namenodes = ["http://nn1:9870", "http://nn2:9870"]
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_toml(MINIMAL, Path::new("/etc"), &env()).unwrap();
        let cl = &c.clusters[0];
        assert_eq!(cl.small_file_bytes, 128 << 20);
        assert_eq!(cl.target_file_bytes, 128 << 20);
        assert_eq!(cl.scan_interval, Duration::from_secs(900));
        assert!(cl.unreferenced_files);
        assert_eq!(cl.metastore.port, 3307);
        assert_eq!(cl.metastore.user, "hive");
        assert_eq!(cl.metastore.database, "metastore");
        assert_eq!(cl.metastore.password.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(cl.metastore.catalogs, vec!["hive"]);
        assert!(cl.filter.matches("any", "table"));
        match &cl.storage {
            StorageConfig::WebHdfs { client, .. } => {
                assert_eq!(client.namenodes.len(), 2);
                assert_eq!(client.user.as_deref(), Some("hive"));
                assert_eq!(client.max_concurrent_requests, 16);
            }
            StorageConfig::Local { .. } => panic!("expected webhdfs"),
        }
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "secrets must not be printed"
        );
    }

    #[test]
    fn rejects_password_in_url_and_unknown_fields() {
        let bad = MINIMAL.replace("hive@db", "hive:pw@db");
        assert!(
            Config::from_toml(&bad, Path::new("."), &env())
                .unwrap_err()
                .to_string()
                .contains("password")
        );
        let unknown = MINIMAL.replace("name = \"prod\"", "name = \"prod\"\nsmall_files = 1");
        assert!(matches!(
            Config::from_toml(&unknown, Path::new("."), &env()),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn missing_env_password_is_an_error() {
        let e = Config::from_toml(MINIMAL, Path::new("."), &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("HMS_PW"));
    }

    #[test]
    fn local_storage_and_postgres() {
        let text = r#"
            [[cluster]]
            name = "demo"
            small_file_bytes = "1MiB"
            exclude = ["scratch.*"]
            unreferenced_files = false
            [cluster.metastore]
            url = "postgres://postgres@127.0.0.1/hms"
            [cluster.storage]
            type = "local"
            root = "warehouse"
        "#;
        let c = Config::from_toml(text, Path::new("/srv"), &env()).unwrap();
        let cl = &c.clusters[0];
        assert_eq!(cl.metastore.backend, Backend::Postgres);
        assert_eq!(cl.metastore.port, 5432);
        assert_eq!(cl.small_file_bytes, 1 << 20);
        assert!(!cl.filter.matches("scratch", "x"));
        assert!(!cl.unreferenced_files);
        match &cl.storage {
            StorageConfig::Local { roots } => {
                assert_eq!(roots, &[Path::new("/srv/warehouse").to_path_buf()]);
            }
            StorageConfig::WebHdfs { .. } => panic!("expected local"),
        }
    }

    #[test]
    fn series_defaults_and_values() {
        let c = Config::from_toml(MINIMAL, Path::new("."), &env()).unwrap();
        assert_eq!(c.clusters[0].series, SeriesConfig::default());
        assert_eq!(c.clusters[0].series.max_tables, 5000);
        assert!(c.clusters[0].series.location_label);
        let text = format!(
            "{MINIMAL}\n[cluster.series]\nmin_excess_files = 10\nmin_small_file_bytes = \"1GiB\"\n\
             max_tables = 3\nlocation_label = false\n"
        );
        let c = Config::from_toml(&text, Path::new("."), &env()).unwrap();
        assert_eq!(
            c.clusters[0].series,
            SeriesConfig {
                min_excess_files: 10,
                min_small_file_bytes: 1 << 30,
                max_tables: 3,
                location_label: false,
            }
        );
        for bad in ["max_tables = 1000001", "max_table = 3", "max_tables = -1"] {
            let text = format!("{MINIMAL}\n[cluster.series]\n{bad}\n");
            assert!(
                Config::from_toml(&text, Path::new("."), &env()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn duplicate_cluster_names_rejected() {
        let twice = format!("{MINIMAL}\n{MINIMAL}");
        assert!(
            Config::from_toml(&twice, Path::new("."), &env())
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
    }
}

#[cfg(test)]
mod example_file {
    use std::collections::BTreeMap;

    use super::*;

    /// The documented example must stay valid.
    #[test]
    fn deploy_example_parses() {
        let text = include_str!("../../deploy/exporter.example.toml");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("metastore.password");
        std::fs::write(&pw, "pw\n").unwrap();
        let text = text.replace(
            "/etc/hive-smallfiles/metastore.password",
            &pw.display().to_string(),
        );
        let c = Config::from_toml(&text, dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(c.clusters.len(), 1);
        assert_eq!(
            c.clusters[0].metastore.password.as_ref().unwrap().expose(),
            "pw"
        );
    }
}
