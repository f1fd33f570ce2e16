//! Sharding of one cluster's tables over several exporter replicas (`shard = "i/n"`).
//!
//! A table belongs to shard `hash(cluster, database, table) mod n`; the hash is FNV-1a 64 over
//! the three names separated by a NUL byte, fixed here (not `std`'s randomly keyed hasher) so
//! that every replica and every release agrees on the split.

use std::fmt;
use std::str::FromStr;

/// One replica's share of the tables: shard `index` of `count` (0-based index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// The shard's index (0-based).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The number of shards.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this shard scans the table.
    pub fn owns(self, cluster: &str, database: &str, table: &str) -> bool {
        self.count <= 1 || shard_of(cluster, database, table, self.count) == self.index
    }
}

/// The shard (0-based) of a table among `count`.
pub fn shard_of(cluster: &str, database: &str, table: &str, count: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    feed(cluster.as_bytes());
    feed(&[0]);
    feed(database.as_bytes());
    feed(&[0]);
    feed(table.as_bytes());
    u32::try_from(h % u64::from(count.max(1))).unwrap_or(0)
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `"i/n"` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("shard must be \"i/n\" with 0 <= i < n, got {s:?}");
        let (i, n) = s.trim().split_once('/').ok_or_else(err)?;
        let i: u32 = i.trim().parse().map_err(|_| err())?;
        let n: u32 = n.trim().parse().map_err(|_| err())?;
        Self::new(i, n).ok_or_else(err)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(
            " 0 / 1 ".parse::<Shard>().map(|s| s.to_string()),
            Ok("0/1".into())
        );
        for bad in ["3/3", "1", "a/2", "1/0", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_table_has_exactly_one_shard() {
        let shards: Vec<Shard> = (0..4).filter_map(|i| Shard::new(i, 4)).collect();
        let mut per_shard = [0u32; 4];
        for t in 0..1000 {
            let name = format!("t{t}");
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns("c", "db", &name)).collect();
            assert_eq!(owners.len(), 1);
            per_shard[owners[0].index() as usize] += 1;
        }
        // Roughly even: each shard within 20 % of a quarter.
        assert!(
            per_shard.iter().all(|&n| (200..=300).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn the_hash_is_fixed() {
        // FNV-1a 64 of "c\0db\0t" is 11542776919038128992 (computed independently); a
        // change here re-shards every deployment.
        assert_eq!(shard_of("c", "db", "t", u32::MAX), 1_023_975_892);
        assert_eq!(shard_of("", "", "", 1), 0);
    }
}
