//! Basic authentication against the web config's bcrypt hashes, built to stay cheap under a
//! flood of wrong passwords:
//!
//! * an `Authorization` value verified once is remembered (as exporter-toolkit does): a
//!   valid client's later requests never wait for bcrypt nor for a permit;
//! * a refused value is remembered for [`REJECTED_TTL`]: a flood repeating the same wrong
//!   password runs bcrypt once per TTL. It is keyed on the exact header value, so a user
//!   who corrects the password sends another value and is verified at once;
//! * at most `permits` bcrypt verifications run at once (FIFO), and one per distinct value:
//!   requests carrying a value already being verified wait for that verification's result
//!   in the cache instead of running their own;
//! * unknown users are verified against a dummy hash, so that their timing matches known
//!   users'.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::sync::Semaphore;

use super::metrics::WebMetrics;

/// A bcrypt hash of a random password, verified against unknown users so that their
/// timing matches known users'.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// How long a refused `Authorization` value is answered from the cache.
pub(super) const REJECTED_TTL: Duration = Duration::from_secs(30);

/// Most values each cache holds (beyond it, the cache is emptied: a flood of distinct
/// values costs bcrypt runs, bounded by the permits, never memory).
const CACHE_ENTRIES: usize = 4096;

/// The verifier of one web config.
#[derive(Debug)]
pub(super) struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<String>>,
    rejected: Mutex<HashMap<String, Instant>>,
    /// Values being verified now, each with the lock its verification holds.
    pending: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    permits: Semaphore,
    metrics: WebMetrics,
}

/// What the caches know about a value.
enum Cached {
    Valid,
    Refused,
    Unknown,
}

impl BasicAuth {
    pub(super) fn new(
        users: BTreeMap<String, String>,
        permits: usize,
        metrics: WebMetrics,
    ) -> Self {
        Self {
            users,
            verified: Mutex::default(),
            rejected: Mutex::default(),
            pending: Mutex::default(),
            permits: Semaphore::new(permits.max(1)),
            metrics,
        }
    }

    pub(super) fn users(&self) -> &BTreeMap<String, String> {
        &self.users
    }

    fn cached(&self, value: &str) -> Cached {
        if self.verified.lock().is_ok_and(|g| g.contains(value)) {
            return Cached::Valid;
        }
        let refused = self
            .rejected
            .lock()
            .ok()
            .and_then(|g| g.get(value).copied())
            .is_some_and(|at| at.elapsed() < REJECTED_TTL);
        if refused {
            Cached::Refused
        } else {
            Cached::Unknown
        }
    }

    /// Whether `value` (an `Authorization` header value) carries valid basic credentials.
    pub(super) async fn check(&self, value: &str) -> bool {
        let ok = self.check_uncounted(value).await;
        if !ok {
            self.metrics.auth_failures.inc();
        }
        ok
    }

    async fn check_uncounted(&self, value: &str) -> bool {
        match self.cached(value) {
            Cached::Valid => return true,
            Cached::Refused => return false,
            Cached::Unknown => {}
        }
        let Some((user, password)) = parse_basic(value) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (DUMMY_HASH.to_owned(), false),
        };
        let Some(pending) = Pending::join(self, value) else {
            return false;
        };
        self.verify_once(value, &pending.lock, password, hash, known)
            .await
    }

    /// Verifies `value` unless a verification of the same value, finished while this one
    /// waited for `same_value`, left its result in the caches.
    async fn verify_once(
        &self,
        value: &str,
        same_value: &tokio::sync::Mutex<()>,
        password: String,
        hash: String,
        known: bool,
    ) -> bool {
        let _same_value = same_value.lock().await;
        match self.cached(value) {
            Cached::Valid => return true,
            Cached::Refused => return false,
            Cached::Unknown => {}
        }
        // The semaphore is never closed; a closed one would only mean "no verification".
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        self.metrics.bcrypt_verifications.inc();
        let verified =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let ok = verified && known;
        if ok {
            if let Ok(mut g) = self.verified.lock() {
                if g.len() >= CACHE_ENTRIES {
                    g.clear();
                }
                g.insert(value.to_owned());
            }
        } else if let Ok(mut g) = self.rejected.lock() {
            if g.len() >= CACHE_ENTRIES {
                g.retain(|_, at| at.elapsed() < REJECTED_TTL);
            }
            if g.len() >= CACHE_ENTRIES {
                g.clear();
            }
            g.insert(value.to_owned(), Instant::now());
        }
        ok
    }
}

/// This request's share of the verification of one value: the last request of a value to
/// leave (done or cancelled) removes the value from [`BasicAuth::pending`].
struct Pending<'a> {
    auth: &'a BasicAuth,
    value: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Pending<'a> {
    fn join(auth: &'a BasicAuth, value: &'a str) -> Option<Self> {
        let mut pending = auth.pending.lock().ok()?;
        let lock = Arc::clone(pending.entry(value.to_owned()).or_default());
        Some(Self { auth, value, lock })
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        // Clones are made under this lock too: the count cannot grow meanwhile. Two: the
        // map's and this request's.
        if let Ok(mut pending) = self.auth.pending.lock()
            && Arc::strong_count(&self.lock) <= 2
        {
            pending.remove(self.value);
        }
    }
}

/// `Basic <base64(user:password)>` into its user and password.
fn parse_basic(value: &str) -> Option<(String, String)> {
    // Authentication schemes are case-insensitive (RFC 9110, section 11.1).
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}
