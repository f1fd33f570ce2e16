//! The Kerberos metrics of the process, over all its logins (one collector per process, fed
//! by every [`Kerberos`](super::Kerberos) login; each binary registers it once, under its
//! own prefix):
//!
//! * `<prefix>_kerberos_ticket_expiry_timestamp_seconds{principal}` — when the current
//!   ticket-granting ticket of the login expires (Unix time);
//! * `<prefix>_kerberos_logins_total{principal}` — successful logins (first login and
//!   renewals; for a credential cache, each new ticket seen in it);
//! * `<prefix>_kerberos_login_failures_total{principal,reason}` — failed logins, `reason`
//!   one of [`FAILURE_REASONS`](super::FAILURE_REASONS).

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PrincipalLabels {
    principal: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    principal: String,
    reason: &'static str,
}

#[derive(Debug, Default)]
struct Metrics {
    expiry: Family<PrincipalLabels, Gauge>,
    logins: Family<PrincipalLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Registers the process's Kerberos metrics in `registry` (which carries the binary's
/// prefix). Call once per registry.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register_with_unit(
        "kerberos_ticket_expiry_timestamp",
        "When the ticket-granting ticket of the Kerberos login expires",
        Unit::Seconds,
        m.expiry.clone(),
    );
    registry.register(
        "kerberos_logins",
        "Successful Kerberos logins (first login and renewals)",
        m.logins.clone(),
    );
    registry.register(
        "kerberos_login_failures",
        "Failed Kerberos logins by cause",
        m.failures.clone(),
    );
}

/// A successful login of `principal` whose ticket expires at `expiry`.
pub(super) fn login(principal: &str, expiry: SystemTime) {
    let labels = PrincipalLabels {
        principal: principal.to_owned(),
    };
    let secs = expiry
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    METRICS
        .expiry
        .get_or_create(&labels)
        .set(i64::try_from(secs).unwrap_or(i64::MAX));
    METRICS.logins.get_or_create(&labels).inc();
}

/// A failed login of `principal`.
pub(super) fn failure(principal: &str, reason: &'static str) {
    METRICS
        .failures
        .get_or_create(&FailureLabels {
            principal: principal.to_owned(),
            reason,
        })
        .inc();
}
