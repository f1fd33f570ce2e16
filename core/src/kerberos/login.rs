//! One login (one [`KerberosConfig`]) of the process: its current credential, the renewal
//! schedule and the retries of failed logins.
//!
//! * Keytab: the first caller logs in (`gss_acquire_cred_from` with the keytab as client
//!   keytab and a fresh private `MEMORY:` cache, so each login has its own tickets and the
//!   process's default cache is never read or written). A background task (started by the
//!   first caller, on its runtime) logs in again at `renew_at` of the ticket lifetime and
//!   swaps the new credential in; contexts made from the old one keep working until they end.
//! * Credential cache: the cache is read (no KDC involved) at first use and again every
//!   minute, so that a renewal by `kinit -R`/k5start is seen; a warning is logged when less
//!   than `expiry_warning` remains, and callers get [`KerberosError::Expired`] once it has
//!   expired.
//! * Failures: the next attempt is after a full-jitter exponential backoff (`retry_min`
//!   doubling up to `retry_max`); until then callers get the last error at once instead of
//!   each reaching the KDC. A valid credential is kept while its renewal fails.
//!
//! GSSAPI calls that may reach the KDC run on the blocking pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use libgssapi::credential::{Cred, CredUsage};
use rand::Rng as _;

use super::config::{CredentialSource, KerberosConfig};
use super::error::{KRB5_CC_NOTFOUND, KRB5_FCC_NOFILE};
use super::ffi::{self, MemoryCache};
use super::{KerberosError, keytab, metrics};

/// How often a credential cache is re-read.
const CCACHE_RELOAD: Duration = Duration::from_secs(60);
/// A credential closer than this to its end is not handed out (a context made from it
/// would likely fail on the way).
const MIN_REMAINING: Duration = Duration::from_secs(5);

/// The result of a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    /// The logged-in principal, as GSSAPI names it.
    pub principal: String,
    /// When the ticket-granting ticket expires.
    pub expiry: SystemTime,
    /// When this credential was obtained (or the cache read).
    pub acquired: SystemTime,
}

/// A credential and what it was made from.
#[derive(Debug)]
pub(super) struct Credential {
    /// The GSSAPI handle (declared before `_cache`: released before the cache is destroyed).
    pub(super) cred: Cred,
    _cache: Option<MemoryCache>,
    pub(super) info: LoginInfo,
}

/// Logs in once, blocking: reaches the KDC for a keytab.
fn acquire(cfg: &KerberosConfig, suffix: &str) -> Result<Credential, KerberosError> {
    match &cfg.source {
        CredentialSource::Keytab { principal, keytab } => {
            let entries = keytab::read(keytab)?;
            if !keytab::holds(&entries, principal) {
                return Err(KerberosError::PrincipalNotInKeytab {
                    principal: principal.clone(),
                    keytab: keytab.display().to_string(),
                    found: keytab::principals(&entries),
                });
            }
            let cache = MemoryCache::new(suffix);
            let client_keytab = format!("FILE:{}", keytab.display());
            let cred = ffi::acquire_from(
                Some(principal),
                &[("client_keytab", &client_keytab), ("ccache", cache.name())],
                CredUsage::Initiate,
            )
            .map_err(|e| {
                let mut e = KerberosError::from_gss("acquire credentials", principal, None, e);
                if let KerberosError::PrincipalNotInKeytab { keytab: k, .. } = &mut e {
                    *k = keytab.display().to_string();
                }
                e
            })?;
            finish(cred, Some(cache), principal)
        }
        CredentialSource::Ccache { principal, ccache } => {
            let label = principal.as_deref().unwrap_or(ccache);
            let cred = ffi::acquire_from(
                principal.as_deref(),
                &[("ccache", ccache)],
                CredUsage::Initiate,
            )
            .map_err(|e| ccache_error(ccache, label, e))?;
            finish(cred, None, label).map_err(|e| match e {
                KerberosError::Gss { message, .. } => KerberosError::Ccache {
                    ccache: ccache.clone(),
                    message,
                },
                e => e,
            })
        }
    }
}

fn ccache_error(ccache: &str, label: &str, e: libgssapi::error::Error) -> KerberosError {
    #[allow(clippy::cast_possible_wrap)]
    let minor = e.minor as i32;
    match KerberosError::from_gss("acquire credentials", label, None, e) {
        KerberosError::Gss { message, .. }
        | KerberosError::PrincipalNotInKeytab { found: message, .. } => {
            let message = if minor == KRB5_FCC_NOFILE || minor == KRB5_CC_NOTFOUND {
                format!("no such cache or no ticket in it ({message})")
            } else {
                message
            };
            KerberosError::Ccache {
                ccache: ccache.to_owned(),
                message,
            }
        }
        other => other,
    }
}

/// Reads the principal and lifetime of a fresh credential (`gss_inquire_cred`).
fn finish(
    cred: Cred,
    cache: Option<MemoryCache>,
    label: &str,
) -> Result<Credential, KerberosError> {
    let info = cred
        .info()
        .map_err(|e| KerberosError::from_gss("inquire credentials", label, None, e))?;
    let now = SystemTime::now();
    if info.lifetime.is_zero() {
        return Err(KerberosError::Expired {
            principal: label.to_owned(),
            message: "the ticket-granting ticket has expired".to_owned(),
        });
    }
    Ok(Credential {
        cred,
        _cache: cache,
        info: LoginInfo {
            principal: info.name.to_string(),
            expiry: now + info.lifetime,
            acquired: now,
        },
    })
}

/// Numbers the private caches of the process.
static CACHE_SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
struct State {
    current: Option<Arc<Credential>>,
    /// The last failure and when the next attempt may be made.
    failure: Option<(KerberosError, Instant)>,
    /// Consecutive failures.
    failures: u32,
    /// When the credential cache was last read.
    read_at: Option<Instant>,
}

/// One login of the process.
#[derive(Debug)]
pub(super) struct Login {
    cfg: KerberosConfig,
    label: String,
    state: Mutex<State>,
    /// Serialises attempts: one KDC exchange at a time per login.
    attempt: tokio::sync::Mutex<()>,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Login {
    pub(super) fn new(cfg: KerberosConfig) -> Self {
        Self {
            label: cfg.label(),
            cfg,
            state: Mutex::default(),
            attempt: tokio::sync::Mutex::new(()),
            renewer: Mutex::new(None),
        }
    }

    pub(super) fn config(&self) -> &KerberosConfig {
        &self.cfg
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last credential obtained, if any.
    pub(super) fn current(&self) -> Option<Arc<Credential>> {
        self.state().current.clone()
    }

    /// A usable credential: the current one, or a new login (see the module documentation).
    pub(super) async fn credential(self: &Arc<Self>) -> Result<Arc<Credential>, KerberosError> {
        self.start_renewer();
        if let Some(c) = self.usable() {
            return Ok(c);
        }
        let _turn = self.attempt.lock().await;
        if let Some(c) = self.usable() {
            return Ok(c);
        }
        if let Some(e) = self.backing_off() {
            return Err(e);
        }
        self.attempt_now().await
    }

    /// The current credential when it is not close to its end (and, for a cache, was read
    /// recently).
    fn usable(&self) -> Option<Arc<Credential>> {
        let st = self.state();
        let c = st.current.as_ref()?;
        let fresh = match self.cfg.source {
            CredentialSource::Keytab { .. } => true,
            CredentialSource::Ccache { .. } => {
                st.read_at.is_some_and(|t| t.elapsed() < CCACHE_RELOAD)
            }
        };
        let remaining = c
            .info
            .expiry
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        (fresh && remaining > MIN_REMAINING).then(|| c.clone())
    }

    /// The last error while its retry delay runs.
    fn backing_off(&self) -> Option<KerberosError> {
        let st = self.state();
        st.failure
            .as_ref()
            .and_then(|(e, next)| (Instant::now() < *next).then(|| e.clone()))
    }

    /// Logs in now (the caller holds `attempt`).
    async fn attempt_now(&self) -> Result<Arc<Credential>, KerberosError> {
        let cfg = self.cfg.clone();
        let suffix = format!(
            "hsf-{}-{}",
            std::process::id(),
            CACHE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let result = tokio::task::spawn_blocking(move || acquire(&cfg, &suffix))
            .await
            .unwrap_or_else(|e| Err(KerberosError::interrupted("login", &e)));
        let mut st = self.state();
        match result {
            Ok(c) => {
                let c = Arc::new(c);
                // A new ticket, not the same one read again (expiry is derived from the remaining
                // lifetime in whole seconds, so a re-read cache may differ by a second).
                let renewed = st
                    .current
                    .as_ref()
                    .is_none_or(|old| c.info.expiry > old.info.expiry + Duration::from_secs(2));
                if renewed {
                    metrics::login(&self.label, c.info.expiry);
                    tracing::info!(
                        principal = %c.info.principal,
                        expires_in_s = c.info.expiry.duration_since(SystemTime::now()).unwrap_or_default().as_secs(),
                        "Kerberos login."
                    );
                }
                if matches!(self.cfg.source, CredentialSource::Ccache { .. }) {
                    self.warn_if_expiring(&c);
                }
                st.current = Some(c.clone());
                st.failure = None;
                st.failures = 0;
                st.read_at = Some(Instant::now());
                Ok(c)
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                let delay = backoff(&self.cfg, st.failures);
                metrics::failure(&self.label, e.reason());
                tracing::warn!(
                    principal = %self.label,
                    error = %e,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "Kerberos login failed."
                );
                st.failure = Some((e.clone(), Instant::now() + delay));
                Err(e)
            }
        }
    }

    fn warn_if_expiring(&self, c: &Credential) {
        let remaining = c
            .info
            .expiry
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if remaining < self.cfg.expiry_warning {
            tracing::warn!(
                principal = %c.info.principal,
                ccache = %self.label,
                expires_in_s = remaining.as_secs(),
                "The Kerberos credential cache expires soon: renew it (kinit -R) or use a keytab."
            );
        }
    }

    /// Starts the background renewal on the caller's runtime, unless it runs.
    fn start_renewer(self: &Arc<Self>) {
        let mut r = self.renewer.lock().unwrap_or_else(PoisonError::into_inner);
        if r.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = Arc::clone(self);
        *r = Some(rt.spawn(async move { me.renew_forever().await }));
    }

    /// When the next background attempt is due.
    fn next_attempt(&self) -> Instant {
        let st = self.state();
        let now = Instant::now();
        if let Some((_, next)) = &st.failure {
            return *next;
        }
        let Some(c) = &st.current else {
            return now + self.cfg.retry_min;
        };
        match self.cfg.source {
            CredentialSource::Keytab { .. } => {
                let lifetime = c
                    .info
                    .expiry
                    .duration_since(c.info.acquired)
                    .unwrap_or_default();
                let renew_after = lifetime * u32::from(self.cfg.renew_at_permille) / 1000;
                let since = SystemTime::now()
                    .duration_since(c.info.acquired)
                    .unwrap_or_default();
                now + renew_after.saturating_sub(since)
            }
            CredentialSource::Ccache { .. } => st.read_at.map_or(now, |t| t + CCACHE_RELOAD),
        }
    }

    async fn renew_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep_until(self.next_attempt().into()).await;
            let _turn = self.attempt.lock().await;
            if Instant::now() + Duration::from_millis(50) < self.next_attempt() {
                continue; // someone else logged in meanwhile
            }
            // Errors are logged and counted by `attempt_now`; a valid credential stays.
            let _ = self.attempt_now().await;
        }
    }
}

/// Full jitter: uniform in `[ceiling/2, ceiling]` with `ceiling = min(retry_max,
/// retry_min * 2^(failures-1))` (half of the ceiling at least, so a retry is never immediate).
fn backoff(cfg: &KerberosConfig, failures: u32) -> Duration {
    let ceiling = cfg
        .retry_min
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(cfg.retry_max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut cfg = KerberosConfig::keytab("p@R", "/k");
        cfg.retry_min = Duration::from_secs(1);
        cfg.retry_max = Duration::from_secs(10);
        for _ in 0..100 {
            let b1 = backoff(&cfg, 1);
            assert!(b1 >= Duration::from_millis(500) && b1 <= Duration::from_secs(1));
            let b3 = backoff(&cfg, 3);
            assert!(b3 >= Duration::from_secs(2) && b3 <= Duration::from_secs(4));
            let b9 = backoff(&cfg, 60);
            assert!(b9 >= Duration::from_secs(5) && b9 <= Duration::from_secs(10));
        }
    }
}
