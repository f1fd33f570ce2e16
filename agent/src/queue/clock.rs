//! The queue's time: wall time for records and cool-downs, a monotonic reading for the rate
//! limiters; [`ManualClock`] lets tests drive limits without waiting.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use governor::clock::FakeRelativeClock;

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
    fake: FakeRelativeClock,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            fake: FakeRelativeClock::default(),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.fake.advance(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start + self.elapsed()
    }
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(governor::clock::Clock::now(&self.fake).as_u64())
    }
}
