//! The cluster's worst partitions by excess files, kept in a bounded heap while the scan
//! streams through the tables (memory: `top_partitions` entries, whatever the cluster size).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::snapshot::PartitionStats;

/// One candidate with the scan-local index of its table.
#[derive(Debug)]
struct Ranked {
    stats: PartitionStats,
    table: usize,
}

impl Ranked {
    /// Worse ranks higher: more excess files, then more small files, then the name first in
    /// (database, table, partition) order (so that ties are deterministic).
    fn rank(&self) -> (u64, u64, Reverse<(&str, &str, &str)>) {
        let s = &self.stats;
        (
            s.excess_files,
            s.small_files,
            Reverse((&s.database, &s.table, &s.partition)),
        )
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// The `limit` worst partitions offered so far (only partitions with excess files).
#[derive(Debug)]
pub(super) struct TopPartitions {
    limit: usize,
    /// Min-heap: the best of the kept ones on top, evicted first.
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl TopPartitions {
    /// Keeps at most `limit` partitions.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(4096) + 1),
        }
    }

    /// Whether a partition with these numbers could enter (cheap pre-check, so that names
    /// are only copied for partitions that might be kept).
    pub(super) fn admits(&self, excess_files: u64, small_files: u64) -> bool {
        if excess_files == 0 || self.limit == 0 {
            return false;
        }
        if self.heap.len() < self.limit {
            return true;
        }
        self.heap.peek().is_none_or(|Reverse(min)| {
            (excess_files, small_files) >= (min.stats.excess_files, min.stats.small_files)
        })
    }

    /// Offers a partition of the table with scan-local index `table`.
    pub(super) fn offer(&mut self, stats: PartitionStats, table: usize) {
        if !self.admits(stats.excess_files, stats.small_files) {
            return;
        }
        self.heap.push(Reverse(Ranked { stats, table }));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// Moves the candidates of the tables `keep` accepts into `into`.
    pub(super) fn drain_into(self, into: &mut Self, keep: impl Fn(usize) -> bool) {
        for Reverse(r) in self.heap {
            if keep(r.table) {
                into.offer(r.stats, r.table);
            }
        }
    }

    /// The kept partitions, worst first.
    pub(super) fn into_sorted(self) -> Vec<PartitionStats> {
        // `into_sorted_vec` of a heap of `Reverse` is worst first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(r)| r.stats)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, excess: u64, small: u64) -> PartitionStats {
        PartitionStats {
            database: "db".into(),
            table: "t".into(),
            partition: name.into(),
            files: excess + 1,
            bytes: 0,
            small_files: small,
            small_bytes: 0,
            excess_files: excess,
            newest_modification_ms: 0,
        }
    }

    #[test]
    fn keeps_the_worst_in_order() {
        let mut top = TopPartitions::new(3);
        for (i, (e, s)) in [(5, 1), (0, 9), (7, 2), (5, 3), (1, 1), (7, 2), (2, 8)]
            .into_iter()
            .enumerate()
        {
            top.offer(p(&format!("k={i}"), e, s), 0);
        }
        let names: Vec<String> = top.into_sorted().into_iter().map(|s| s.partition).collect();
        assert_eq!(names, ["k=2", "k=5", "k=3"]);
    }

    #[test]
    fn failed_tables_are_dropped_when_merging() {
        let mut chunk = TopPartitions::new(5);
        chunk.offer(p("a", 3, 0), 0);
        chunk.offer(p("b", 9, 0), 1);
        let mut all = TopPartitions::new(5);
        chunk.drain_into(&mut all, |t| t != 1);
        let names: Vec<String> = all.into_sorted().into_iter().map(|s| s.partition).collect();
        assert_eq!(names, ["a"]);
        assert!(!TopPartitions::new(0).admits(5, 5));
    }
}
