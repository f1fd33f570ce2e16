//! Pure policy: may this table (and which of its partitions) be merged now? Decided from the
//! live MetaStore row and a fresh listing, never from alert labels.
//!
//! Never touched: views and materialized views, storage-handler tables (Kudu, HBase, JDBC,
//! Iceberg...), Hudi tables; external tables only when allowed. Transactional tables are only
//! ever compacted (the planner decides that). Partitions written to within the quiet period
//! are left alone, and the default (NULL) partition is never rewritten by a static spec.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{Datelike, NaiveTime, TimeZone, Timelike, Weekday};
use hive_smallfiles_core::config::TableFilter;
use hive_smallfiles_core::metastore::{TableMeta, TableType};

/// Hive's default partition name (`hive.exec.default.partition.name`): a NULL value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// A weekly maintenance window in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Days the window opens on.
    pub days: Vec<Weekday>,
    /// Opening time (inclusive).
    pub start: NaiveTime,
    /// Closing time (exclusive); before `start` means the window runs past midnight.
    pub end: NaiveTime,
    /// Time zone of days and times.
    pub timezone: chrono_tz::Tz,
}

impl MaintenanceWindow {
    /// Whether `now` falls in the window. A window that runs past midnight belongs to the day
    /// it opens on.
    pub fn contains(&self, now: SystemTime) -> bool {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let Some(local) = self
            .timezone
            .timestamp_opt(i64::try_from(secs).unwrap_or(0), 0)
            .single()
        else {
            return false;
        };
        let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second())
            .unwrap_or_default();
        let today = local.weekday();
        if self.start <= self.end {
            self.days.contains(&today) && t >= self.start && t < self.end
        } else {
            (self.days.contains(&today) && t >= self.start)
                || (self.days.contains(&today.pred()) && t < self.end)
        }
    }
}

/// Policy settings (validated configuration).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Which `database.table` may be merged (allow globs minus deny globs).
    pub tables: TableFilter,
    /// Whether external tables may be merged.
    pub allow_external: bool,
    /// A partition is merged only if its newest file is older than this.
    pub quiet_period: Duration,
    /// Upper bound of the bytes one job rewrites (partitions beyond it wait for a later job).
    pub max_bytes_per_job: u64,
    /// A partition is worth merging from this many excess files on.
    pub min_excess_files: u64,
    /// Merges only inside one of these windows; empty: any time.
    pub windows: Vec<MaintenanceWindow>,
    /// Plan and report everything, change nothing.
    pub dry_run: bool,
    /// Tables (`database.table` globs) whose operator accepted in-place engine rewrites
    /// (`INSERT OVERWRITE`, `CONCATENATE`), which can lose a concurrent writer's file.
    pub allow_in_place: TableFilter,
    /// How staged merges commit (`switch` or `swap`), see [`commit_mode`].
    pub commit_mode: CommitModeSetting,
    /// Tables (`database.table` globs) whose writers put files into partition directories
    /// by path (ingestion tools): never switched away from the paths their writers use.
    pub written_by_path: TableFilter,
}

/// `policy.commit_mode` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitModeSetting {
    /// Switch managed tables when the cluster has an engine to run `ALTER TABLE … SET
    /// LOCATION`; swap external tables and tables written by path.
    #[default]
    Auto,
    /// Switch every table not written by path (external ones too) when there is an engine.
    Switch,
    /// Always swap directories.
    Swap,
}

/// How one staged merge makes its output visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitMode {
    /// Two renames swap the partition directory (readers that listed the old files may fail
    /// or, between the renames, see an empty partition).
    #[default]
    Swap,
    /// The output goes to a new hidden directory and the partition's location is switched
    /// in the MetaStore through the engine; readers keep their snapshot.
    Switch,
}

impl CommitMode {
    /// Label for metrics, the audit log and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Swap => "swap",
            Self::Switch => "switch",
        }
    }
}

/// Which commit a staged merge of `table` uses, and why (pure). A location switch needs an
/// engine to run `ALTER TABLE … SET LOCATION` (the MetaStore database is never written
/// directly); a table written by path must keep its paths, since its writers would put new
/// files into a directory no partition points at any more.
pub fn commit_mode(policy: &Policy, table: &TableMeta, has_engine: bool) -> (CommitMode, String) {
    let name = format!("{}.{}", table.database, table.name);
    if policy.commit_mode == CommitModeSetting::Swap {
        return (CommitMode::Swap, "policy.commit_mode = \"swap\"".to_owned());
    }
    if policy.written_by_path.matches(&table.database, &table.name) {
        return (
            CommitMode::Swap,
            format!("{name} is written by path (policy.written_by_path): its directories stay"),
        );
    }
    if !has_engine {
        return (
            CommitMode::Swap,
            "no engine (hiveserver2) configured to switch locations".to_owned(),
        );
    }
    if policy.commit_mode == CommitModeSetting::Auto
        && table.class().table_type == TableType::External
    {
        return (
            CommitMode::Swap,
            format!(
                "{name} is external: its writers may write by path (list it in \
                 policy.written_by_path, or set policy.commit_mode = \"switch\")"
            ),
        );
    }
    (
        CommitMode::Switch,
        "the partition's location is switched to the merged directory; readers keep theirs"
            .to_owned(),
    )
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            tables: TableFilter::new(&["*".to_owned()], &[])
                .unwrap_or_else(|_| unreachable!("static glob")),
            allow_external: false,
            quiet_period: Duration::from_secs(3600),
            max_bytes_per_job: 100 << 30,
            min_excess_files: 2,
            windows: Vec::new(),
            dry_run: false,
            allow_in_place: TableFilter::new(&[], &[]).unwrap_or_else(|_| unreachable!("no globs")),
            commit_mode: CommitModeSetting::Auto,
            written_by_path: TableFilter::new(&[], &[])
                .unwrap_or_else(|_| unreachable!("no globs")),
        }
    }
}

/// Why something is not merged: a bounded label and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Metric label.
    pub reason: &'static str,
    /// Explanation for the audit log and the API.
    pub detail: String,
}

impl Skip {
    /// A skip.
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Table-level checks.
pub fn check_table(policy: &Policy, table: &TableMeta, now: SystemTime) -> Result<(), Skip> {
    if !policy.tables.matches(&table.database, &table.name) {
        return Err(Skip::new(
            "denied",
            format!(
                "{}.{} is not allowed by the allow/deny globs",
                table.database, table.name
            ),
        ));
    }
    let class = table.class();
    match class.table_type {
        TableType::View | TableType::MaterializedView => {
            return Err(Skip::new(
                "view",
                "views and materialized views have no files of their own to merge",
            ));
        }
        TableType::Index | TableType::Other => {
            return Err(Skip::new(
                "table_type",
                format!("table type {} is not merged", table.tbl_type),
            ));
        }
        TableType::Managed | TableType::External => {}
    }
    if let Some(handler) = &class.storage_handler {
        return Err(Skip::new(
            "storage_handler",
            format!("storage handler {handler} manages its own files"),
        ));
    }
    let input = table
        .input_format
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    if input.contains("hoodie") || input.contains("hudi") {
        return Err(Skip::new("hudi", "Hudi manages its own files"));
    }
    if class.table_type == TableType::External && !policy.allow_external {
        return Err(Skip::new(
            "external",
            "external tables are not merged (policy.allow_external = false)",
        ));
    }
    if !policy.windows.is_empty() && !policy.windows.iter().any(|w| w.contains(now)) {
        return Err(Skip::new(
            "maintenance_window",
            "outside every maintenance window",
        ));
    }
    Ok(())
}

/// Partition-level check: `None` if it may be merged, else why not.
pub fn check_partition(
    policy: &Policy,
    values: &[String],
    newest_file_ms: i64,
    now: SystemTime,
) -> Option<Skip> {
    if values.iter().any(|v| v == DEFAULT_PARTITION) {
        return Some(Skip::new(
            "default_partition",
            "the NULL partition cannot be addressed by a static partition spec",
        ));
    }
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let quiet_ms = i64::try_from(policy.quiet_period.as_millis()).unwrap_or(i64::MAX);
    if newest_file_ms > now_ms.saturating_sub(quiet_ms) {
        return Some(Skip::new(
            "quiet_period",
            "written to within the quiet period",
        ));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn table(tbl_type: &str, params: &[(&str, &str)]) -> TableMeta {
        TableMeta {
            id: 1,
            catalog: "hive".into(),
            database: "db".into(),
            name: "t".into(),
            tbl_type: tbl_type.into(),
            location: Some("hdfs://ns/w/t".into()),
            input_format: Some("org.apache.hadoop.mapred.TextInputFormat".into()),
            output_format: None,
            serde_lib: None,
            num_buckets: -1,
            bucket_columns: 0,
            sort_columns: 0,
            cd_id: Some(1),
            create_time: 0,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            serde_params: BTreeMap::new(),
            partition_keys: vec![],
            partitions: vec![],
        }
    }

    #[test]
    fn table_rules() {
        let now = SystemTime::now();
        let p = Policy::default();
        let cases: Vec<(TableMeta, Option<&str>)> = vec![
            (table("MANAGED_TABLE", &[]), None),
            (table("VIRTUAL_VIEW", &[]), Some("view")),
            (table("MATERIALIZED_VIEW", &[]), Some("view")),
            (table("EXTERNAL_TABLE", &[]), Some("external")),
            (
                table("MANAGED_TABLE", &[("EXTERNAL", "TRUE")]),
                Some("external"),
            ),
            (
                table(
                    "MANAGED_TABLE",
                    &[(
                        "storage_handler",
                        "org.apache.hadoop.hive.kudu.KuduStorageHandler",
                    )],
                ),
                Some("storage_handler"),
            ),
            (
                table("EXTERNAL_TABLE", &[("table_type", "ICEBERG")]),
                Some("storage_handler"),
            ),
            (table("MANAGED_TABLE", &[("transactional", "true")]), None),
            (table("INDEX_TABLE", &[]), Some("table_type")),
        ];
        for (t, want) in cases {
            assert_eq!(
                check_table(&p, &t, now).err().map(|s| s.reason),
                want,
                "{} {:?}",
                t.tbl_type,
                t.params
            );
        }
        let mut hudi = table("MANAGED_TABLE", &[]);
        hudi.input_format = Some("org.apache.hudi.hadoop.HoodieParquetInputFormat".into());
        assert_eq!(check_table(&p, &hudi, now).unwrap_err().reason, "hudi");
        let allow_ext = Policy {
            allow_external: true,
            ..Policy::default()
        };
        assert!(check_table(&allow_ext, &table("EXTERNAL_TABLE", &[]), now).is_ok());
        let deny = Policy {
            tables: TableFilter::new(&["*".into()], &["db.*".into()]).unwrap(),
            ..Policy::default()
        };
        assert_eq!(
            check_table(&deny, &table("MANAGED_TABLE", &[]), now)
                .unwrap_err()
                .reason,
            "denied"
        );
    }

    #[test]
    fn partition_rules() {
        let p = Policy::default();
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert!(check_partition(&p, &["a".into()], 1_000_000, now).is_none());
        assert_eq!(
            check_partition(&p, &["a".into()], 9_000_000, now)
                .unwrap()
                .reason,
            "quiet_period"
        );
        assert_eq!(
            check_partition(&p, &[DEFAULT_PARTITION.into()], 0, now)
                .unwrap()
                .reason,
            "default_partition"
        );
    }

    #[test]
    fn maintenance_windows() {
        let w = MaintenanceWindow {
            days: vec![Weekday::Sat],
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(4, 0, 0).unwrap(),
            timezone: chrono_tz::Europe::Berlin,
        };
        // 2024-06-01 is a Saturday; Berlin is UTC+2 in June.
        let at = |h: u64, day: u64| {
            UNIX_EPOCH + Duration::from_secs(1_717_200_000 + day * 86_400 + h * 3600)
        };
        assert!(w.contains(at(21, 0)), "Sat 23:00 Berlin");
        assert!(
            w.contains(at(1, 1)),
            "Sun 03:00 Berlin, window opened Saturday"
        );
        assert!(!w.contains(at(3, 1)), "Sun 05:00 Berlin");
        assert!(!w.contains(at(12, 0)), "Sat 14:00 Berlin");
        let p = Policy {
            windows: vec![w],
            ..Policy::default()
        };
        assert_eq!(
            check_table(&p, &tests::table("MANAGED_TABLE", &[]), at(12, 0))
                .unwrap_err()
                .reason,
            "maintenance_window"
        );
    }
}
