//! A rate limit as the generic cell rate algorithm (GCRA, the "virtual scheduling" form of
//! ITU-T I.371 Annex A), split into a non-consuming [`Gcra::probe`] and a
//! [`Gcra::commit`] of the probed state. The split is what lets a merge take cells from
//! several limits at once — all or none — which a consume-on-success limiter cannot do.
//!
//! A quota of `n` per hour with burst `n`: the emission interval is `T = 1h/n`, a full
//! bucket holds `n` cells, so over any window of length `W` at most `n + W/T` cells pass.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// One quota: `per_hour` cells an hour, all of them available at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quota {
    /// Time to earn one cell.
    interval: Duration,
    /// Cells in a full bucket.
    burst: NonZeroU32,
}

impl Quota {
    pub(super) fn per_hour(n: NonZeroU32) -> Self {
        Self {
            interval: HOUR / n.get(),
            burst: n,
        }
    }

    pub(super) fn burst(self) -> NonZeroU32 {
        self.burst
    }
}

/// The outcome of a probe: the state to commit, or how long until the cells would pass.
pub(super) type Probe = Result<Duration, Duration>;

/// One limit's state: the theoretical arrival time of the next cell (monotonic).
#[derive(Debug, Clone, Copy, Default)]
struct Tat(Duration);

fn probe(tat: Tat, quota: Quota, now: Duration, cells: NonZeroU32) -> Probe {
    // More cells than a full bucket can never pass; callers clamp, this is a safety net.
    let cells = cells.min(quota.burst).get();
    let new_tat = tat.0.max(now) + quota.interval * cells;
    let tolerance = quota.interval * quota.burst.get();
    let allowed_at = new_tat.saturating_sub(tolerance);
    if allowed_at <= now {
        Ok(new_tat)
    } else {
        Err(allowed_at - now)
    }
}

/// An unkeyed limit.
#[derive(Debug)]
pub(super) struct Gcra {
    quota: Quota,
    tat: Tat,
}

impl Gcra {
    pub(super) fn new(quota: Quota) -> Self {
        Self {
            quota,
            tat: Tat::default(),
        }
    }

    pub(super) fn quota(&self) -> Quota {
        self.quota
    }

    /// Whether `cells` would pass at `now`, changing nothing.
    pub(super) fn probe(&self, now: Duration, cells: NonZeroU32) -> Probe {
        probe(self.tat, self.quota, now, cells)
    }

    /// Takes the cells of a successful [`Self::probe`].
    pub(super) fn commit(&mut self, probed: Duration) {
        self.tat = Tat(probed);
    }
}

/// One limit per key (cluster).
#[derive(Debug)]
pub(super) struct KeyedGcra {
    quota: Quota,
    tats: HashMap<String, Tat>,
}

impl KeyedGcra {
    pub(super) fn new(quota: Quota) -> Self {
        Self {
            quota,
            tats: HashMap::new(),
        }
    }

    pub(super) fn quota(&self) -> Quota {
        self.quota
    }

    pub(super) fn probe(&self, key: &str, now: Duration, cells: NonZeroU32) -> Probe {
        probe(
            self.tats.get(key).copied().unwrap_or_default(),
            self.quota,
            now,
            cells,
        )
    }

    pub(super) fn commit(&mut self, key: &str, probed: Duration, now: Duration) {
        // Keys whose bucket is full again carry no state: forget them (bounded memory).
        if self.tats.len() >= 4096 {
            self.tats.retain(|_, t| t.0 > now);
        }
        self.tats.insert(key.to_owned(), Tat(probed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: NonZeroU32 = NonZeroU32::MIN;

    #[test]
    fn burst_then_one_cell_per_interval() {
        let mut g = Gcra::new(Quota::per_hour(NonZeroU32::new(4).unwrap()));
        let now = Duration::from_secs(100);
        for _ in 0..4 {
            let p = g.probe(now, ONE).unwrap();
            g.commit(p);
        }
        // The fifth waits one interval (15 minutes), and a probe spends nothing.
        assert_eq!(g.probe(now, ONE), Err(Duration::from_secs(900)));
        assert_eq!(g.probe(now, ONE), Err(Duration::from_secs(900)));
        let later = now + Duration::from_secs(900);
        let p = g.probe(later, ONE).unwrap();
        g.commit(p);
        assert!(g.probe(later, ONE).is_err());
    }

    #[test]
    fn several_cells_and_keys() {
        let mut g = KeyedGcra::new(Quota::per_hour(NonZeroU32::new(10).unwrap()));
        let now = Duration::ZERO;
        let six = NonZeroU32::new(6).unwrap();
        let p = g.probe("a", now, six).unwrap();
        g.commit("a", p, now);
        // 4 left in "a": 6 more need 2 intervals of 6 minutes.
        assert_eq!(g.probe("a", now, six), Err(Duration::from_secs(720)));
        assert!(g.probe("b", now, six).is_ok());
        // A request above the burst waits for a full bucket.
        let all = NonZeroU32::new(1000).unwrap();
        assert_eq!(g.probe("a", now, all), Err(Duration::from_secs(2160)));
    }
}
