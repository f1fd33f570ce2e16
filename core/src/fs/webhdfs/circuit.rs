//! Backing off from a cluster whose every NameNode failed: a circuit breaker in front of the
//! NameNode requests.
//!
//! Without it, an outage of every NameNode turns each listing of a scan into a failover round
//! over all NameNodes plus its retries (a scan of a few thousand directories then sends
//! several times its healthy number of requests into a NameNode that is trying to come back).
//! With it:
//!
//! * **closed** (normal): requests go out. A request whose failover round found every
//!   NameNode down — refused or broken connections, `StandbyException`, or a gateway's 502 /
//!   503 / 504 from each — *opens* the circuit.
//! * **open**: for a delay, requests fail at once with [`FsError::BackingOff`] without being
//!   sent; requests already past admission when it opened stop before their next NameNode
//!   attempt. The delay grows exponentially with the consecutive failed rounds, from
//!   `initial` up to `max`, with *equal* jitter (uniform in `[d/2, d]`, so that it never
//!   collapses to nothing as full jitter can, and clients restarted together spread out).
//! * **half-open** (the delay has passed): the next request is the one *trial*; every other
//!   request keeps failing fast while it is out. If any NameNode serves it, the circuit
//!   closes; if every NameNode fails again, it reopens with the next, longer delay.
//!
//! Requests during an outage are therefore bounded by the schedule, not by the work asked
//! for: one failover round per delay (at most `log2(max/initial) + 1 + T / (max/2)` rounds in
//! an outage of length `T`), plus the round of the requests that were already in flight when
//! it began. Timeouts neither open nor close the circuit (a slow listing of a huge directory
//! is not an outage); any answer of a NameNode, an error included, closes it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::fs::FsError;

/// Bounds of the delay of an open circuit (`storage.outage_backoff`,
/// `storage.outage_max_backoff`). A zero `initial` switches backing off off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageBackoff {
    /// Delay after the first round that found every NameNode down.
    pub initial: Duration,
    /// Upper bound of the delay; doubling stops here.
    pub max: Duration,
}

impl Default for OutageBackoff {
    /// 1 s, doubling up to 30 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl OutageBackoff {
    /// No backing off: every request is sent.
    pub const DISABLED: Self = Self {
        initial: Duration::ZERO,
        max: Duration::ZERO,
    };

    fn enabled(&self) -> bool {
        !self.initial.is_zero()
    }

    /// The delay after `rounds` consecutive failed rounds (1 for the first), jittered.
    pub(super) fn delay(&self, rounds: u32) -> Duration {
        let exp = rounds.saturating_sub(1).min(30);
        let ceiling = self
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.max.max(self.initial));
        let half = ceiling / 2;
        let span = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=span))
    }
}

/// How a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The circuit is closed: send.
    Closed,
    /// The circuit is half-open and this request is its one trial.
    Trial,
}

/// What a NameNode request's outcome says about the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A NameNode answered (success, or an error it decided on).
    Served,
    /// Every NameNode failed.
    AllDown,
    /// Says nothing either way (a timeout, a client-side failure).
    Unknown,
}

#[derive(Debug, Default)]
struct State {
    /// Consecutive failed rounds since the last served request; 0 when closed.
    rounds: u32,
    /// While open (or half-open once passed): when the next trial may go.
    open_until: Option<Instant>,
    /// A trial is out.
    trial: bool,
    /// What the last failed round said (for the error message).
    last: String,
}

/// The circuit of one cluster's client.
#[derive(Debug)]
pub(super) struct Circuit {
    backoff: OutageBackoff,
    state: Mutex<State>,
}

/// What [`Circuit::record`] changed, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    /// Nothing.
    None,
    /// Opened (or reopened after a failed trial) for this delay.
    Opened(Duration),
    /// Closed after having been open.
    Closed,
}

impl Circuit {
    pub(super) fn new(backoff: OutageBackoff) -> Self {
        Self {
            backoff,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may be sent now; the error to fail it with otherwise.
    pub(super) fn admit(&self) -> Result<Admission, FsError> {
        if !self.backoff.enabled() {
            return Ok(Admission::Closed);
        }
        let now = Instant::now();
        let mut s = self.lock();
        match s.open_until {
            None => Ok(Admission::Closed),
            Some(until) if now < until || s.trial => Err(FsError::BackingOff {
                retry_in: until.saturating_duration_since(now),
                last: s.last.clone(),
            }),
            Some(_) => {
                s.trial = true;
                Ok(Admission::Trial)
            }
        }
    }

    /// Whether a request admitted as `admission` may still go to the next NameNode: not once
    /// the circuit opened under it (unless it is the trial).
    pub(super) fn still_admits(&self, admission: Admission) -> Result<(), FsError> {
        if admission == Admission::Trial || !self.backoff.enabled() {
            return Ok(());
        }
        let s = self.lock();
        match s.open_until {
            None => Ok(()),
            Some(until) => Err(FsError::BackingOff {
                retry_in: until.saturating_duration_since(Instant::now()),
                last: s.last.clone(),
            }),
        }
    }

    /// Records the outcome of a request admitted as `admission`.
    pub(super) fn record(&self, admission: Admission, outcome: Outcome, last: &str) -> Transition {
        if !self.backoff.enabled() {
            return Transition::None;
        }
        let mut s = self.lock();
        if admission == Admission::Trial {
            s.trial = false;
        }
        match outcome {
            Outcome::Served => {
                let was_open = s.open_until.is_some();
                s.rounds = 0;
                s.open_until = None;
                if was_open {
                    Transition::Closed
                } else {
                    Transition::None
                }
            }
            // A request admitted while closed that fails after the circuit opened under it
            // is part of the same outage: it does not lengthen the delay.
            Outcome::AllDown if admission == Admission::Closed && s.open_until.is_some() => {
                Transition::None
            }
            Outcome::AllDown => {
                s.rounds = s.rounds.saturating_add(1);
                let delay = self.backoff.delay(s.rounds);
                s.open_until = Some(Instant::now() + delay);
                last.clone_into(&mut s.last);
                Transition::Opened(delay)
            }
            Outcome::Unknown => Transition::None,
        }
    }

    /// Gives the trial back without an outcome (its request was dropped or said nothing):
    /// the next request becomes the trial.
    pub(super) fn release(&self, admission: Admission) {
        if admission == Admission::Trial {
            self.lock().trial = false;
        }
    }

    /// Whether the circuit is open (or half-open) now.
    pub(super) fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }
}

tokio::task_local! {
    /// Set while the circuit's trial runs (its failover round, or the probes).
    static TRIAL: ();
}

/// Runs `fut` as the trial when `admission` is one (the gate lets its requests through).
pub(super) async fn run_as<F: std::future::Future>(admission: Admission, fut: F) -> F::Output {
    match admission {
        Admission::Trial => TRIAL.scope((), fut).await,
        Admission::Closed => fut.await,
    }
}

impl Circuit {
    /// The last check before a NameNode request goes out (its permit held): not while the
    /// circuit is open, unless this is the trial. Requests queued for a permit when the
    /// outage began stop here.
    pub(super) fn gate(&self) -> Result<(), FsError> {
        if TRIAL.try_with(|()| ()).is_ok() {
            return Ok(());
        }
        self.still_admits(Admission::Closed)
    }
}

/// Gives a trial back when its request ends without [`Circuit::record`] (cancelled).
pub(super) struct TrialGuard<'a> {
    circuit: &'a Circuit,
    admission: Admission,
    armed: bool,
}

impl<'a> TrialGuard<'a> {
    pub(super) fn new(circuit: &'a Circuit, admission: Admission) -> Self {
        Self {
            circuit,
            admission,
            armed: true,
        }
    }

    /// Records the outcome (once) and disarms the guard.
    pub(super) fn record(mut self, outcome: Outcome, last: &str) -> Transition {
        self.armed = false;
        self.circuit.record(self.admission, outcome, last)
    }
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.circuit.release(self.admission);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> OutageBackoff {
        OutageBackoff {
            initial: Duration::from_millis(40),
            max: Duration::from_millis(160),
        }
    }

    #[test]
    fn delays_grow_jittered_within_bounds() {
        let b = OutageBackoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        for _ in 0..200 {
            for (rounds, ceiling) in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30)] {
                let d = b.delay(rounds);
                let ceiling = Duration::from_secs(ceiling);
                assert!(d >= ceiling / 2 && d <= ceiling, "{rounds}: {d:?}");
            }
        }
    }

    #[test]
    fn opens_fails_fast_then_one_trial_decides() {
        let c = Circuit::new(quick());
        assert_eq!(c.admit().unwrap(), Admission::Closed);
        let t = c.record(Admission::Closed, Outcome::AllDown, "refused");
        assert!(matches!(t, Transition::Opened(d) if d >= Duration::from_millis(20)));
        // Another request of the same outage does not lengthen the delay.
        assert_eq!(
            c.record(Admission::Closed, Outcome::AllDown, "refused"),
            Transition::None
        );
        let err = c.admit().unwrap_err();
        assert!(matches!(err, FsError::BackingOff { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(c.still_admits(Admission::Closed).is_err());

        std::thread::sleep(Duration::from_millis(45));
        assert_eq!(c.admit().unwrap(), Admission::Trial);
        assert!(c.admit().is_err(), "one trial at a time");
        assert!(matches!(
            c.record(Admission::Trial, Outcome::AllDown, "still refused"),
            Transition::Opened(d) if d >= Duration::from_millis(40)
        ));
        std::thread::sleep(Duration::from_millis(85));
        assert_eq!(c.admit().unwrap(), Admission::Trial);
        assert_eq!(
            c.record(Admission::Trial, Outcome::Served, ""),
            Transition::Closed
        );
        assert_eq!(c.admit().unwrap(), Admission::Closed);
        assert!(!c.is_open());
    }

    #[test]
    fn a_dropped_trial_is_given_back() {
        let c = Circuit::new(quick());
        c.record(Admission::Closed, Outcome::AllDown, "x");
        std::thread::sleep(Duration::from_millis(45));
        let a = c.admit().unwrap();
        drop(TrialGuard::new(&c, a));
        assert_eq!(c.admit().unwrap(), Admission::Trial);
    }

    #[test]
    fn disabled_never_rejects() {
        let c = Circuit::new(OutageBackoff::DISABLED);
        c.record(Admission::Closed, Outcome::AllDown, "x");
        assert_eq!(c.admit().unwrap(), Admission::Closed);
    }
}
