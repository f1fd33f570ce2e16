//! The queue's time: wall time for records and cool-downs, a monotonic reading for the rate
//! limiters; [`ManualClock`] lets tests drive limits without waiting.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Time source of the queue.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall time (job records, cool-downs, retry times).
    fn now(&self) -> SystemTime;
    /// Monotonic time since an arbitrary origin (rate limits, durations).
    fn elapsed(&self) -> Duration;
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to (tests); clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: SystemTime,
    /// Nanoseconds advanced since `start`.
    elapsed_ns: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            elapsed_ns: Arc::default(),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start + self.elapsed()
    }
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns.load(Ordering::SeqCst))
    }
}
