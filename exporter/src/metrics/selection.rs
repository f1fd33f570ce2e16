//! Which tables get per-table series (`hive_table_*`): a pure function of a snapshot's tables
//! and the cluster's `[cluster.series]`, evaluated once per published snapshot.
//!
//! A table is a candidate when it passes the floors (excess files, bytes held in small files)
//! or needs an operator's attention whatever its size: a partition directory missing, or files
//! below its location that no partition points at (the alerts on those name the table). When
//! there are more candidates than `max_tables`, the worst are kept: the always-kept ones first,
//! then by excess files, then by small-file bytes, ties broken by database and table name so
//! that the choice is the same on every replica and every scrape.

use std::cmp::{Ordering, Reverse};

use crate::config::SeriesConfig;
use crate::snapshot::TableStats;

/// Whether the table is kept whatever the floors: it has missing partition directories or
/// unreferenced files.
pub fn always_kept(t: &TableStats) -> bool {
    t.missing_directories > 0 || t.unreferenced.is_some_and(|u| u.files > 0)
}

/// Whether the table passes the floors of `cfg`.
pub fn passes_floors(t: &TableStats, cfg: &SeriesConfig) -> bool {
    t.excess_files >= cfg.min_excess_files && t.counts.small_bytes >= cfg.min_small_file_bytes
}

/// Worst first: always-kept tables, then excess files, then small-file bytes (both
/// descending), then database and table names (ascending).
fn worst_first(a: &TableStats, b: &TableStats) -> Ordering {
    let key = |t: &TableStats| {
        (
            Reverse(always_kept(t)),
            Reverse(t.excess_files),
            Reverse(t.counts.small_bytes),
        )
    };
    key(a)
        .cmp(&key(b))
        .then_with(|| a.database.cmp(&b.database))
        .then_with(|| a.table.cmp(&b.table))
}

/// The indices (ascending) of the tables that get per-table series.
pub fn select(tables: &[TableStats], cfg: &SeriesConfig) -> Vec<usize> {
    let mut chosen: Vec<usize> = (0..tables.len())
        .filter(|&i| always_kept(&tables[i]) || passes_floors(&tables[i], cfg))
        .collect();
    if chosen.len() > cfg.max_tables {
        if cfg.max_tables > 0 {
            chosen.select_nth_unstable_by(cfg.max_tables - 1, |&a, &b| {
                worst_first(&tables[a], &tables[b])
            });
        }
        chosen.truncate(cfg.max_tables);
        chosen.sort_unstable();
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::table;
    use crate::snapshot::Unreferenced;

    fn cfg(min_excess_files: u64, min_small_file_bytes: u64, max_tables: usize) -> SeriesConfig {
        SeriesConfig {
            min_excess_files,
            min_small_file_bytes,
            max_tables,
            location_label: true,
        }
    }

    fn names(tables: &[TableStats], chosen: &[usize]) -> Vec<String> {
        chosen.iter().map(|&i| tables[i].table.clone()).collect()
    }

    #[test]
    fn defaults_keep_everything_under_the_cap() {
        let tables: Vec<TableStats> = (0..10)
            .map(|i| table("db", &format!("t{i}"), 0, 0))
            .collect();
        assert_eq!(
            select(&tables, &SeriesConfig::default()),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn floors_cap_and_ties() {
        let mut tables = vec![
            table("a", "low", 1, 10),
            table("a", "mid", 5, 10),
            table("b", "tie1", 9, 10),
            table("b", "tie2", 9, 10),
            table("c", "big_bytes", 2, 1_000_000),
        ];
        // Floors alone.
        assert_eq!(
            names(&tables, &select(&tables, &cfg(5, 0, 100))),
            ["mid", "tie1", "tie2"]
        );
        assert_eq!(
            names(&tables, &select(&tables, &cfg(0, 1000, 100))),
            ["big_bytes"]
        );
        // Cap: the worst by excess files, ties by name, output in snapshot order.
        assert_eq!(names(&tables, &select(&tables, &cfg(0, 0, 1))), ["tie1"]);
        assert_eq!(
            names(&tables, &select(&tables, &cfg(0, 0, 3))),
            ["mid", "tie1", "tie2"]
        );
        assert!(select(&tables, &cfg(0, 0, 0)).is_empty());
        // Equal excess files: more small-file bytes is worse.
        tables[0].excess_files = 9;
        tables[0].counts.small_bytes = 11;
        assert_eq!(names(&tables, &select(&tables, &cfg(0, 0, 1))), ["low"]);
        // Always kept: below the floors and ranked first under the cap.
        tables[1].missing_directories = 1;
        tables[4].unreferenced = Some(Unreferenced {
            directories: 1,
            files: 3,
            bytes: 5,
        });
        assert_eq!(
            names(&tables, &select(&tables, &cfg(100, 0, 2))),
            ["mid", "big_bytes"]
        );
        // Looked at, nothing found: not kept for that.
        tables[4].unreferenced = Some(Unreferenced::default());
        assert_eq!(names(&tables, &select(&tables, &cfg(100, 0, 5))), ["mid"]);
    }

    #[test]
    fn deterministic_whatever_the_order() {
        let tables: Vec<TableStats> = (0..200)
            .map(|i| table(&format!("d{}", i % 7), &format!("t{i}"), i % 13, i % 5))
            .collect();
        let c = cfg(2, 0, 37);
        let want: Vec<String> = names(&tables, &select(&tables, &c));
        assert_eq!(want.len(), 37);
        let mut reversed = tables.clone();
        reversed.reverse();
        let mut got = names(&reversed, &select(&reversed, &c));
        got.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(got, want_sorted);
        // The kept ones are at least as bad as every dropped one.
        let kept_min = tables
            .iter()
            .filter(|t| want.contains(&t.table))
            .map(|t| t.excess_files)
            .min();
        let dropped_max = tables
            .iter()
            .filter(|t| !want.contains(&t.table) && passes_floors(t, &c))
            .map(|t| t.excess_files)
            .max();
        assert!(kept_min >= dropped_max, "{kept_min:?} {dropped_max:?}");
    }
}
