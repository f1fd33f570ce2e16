//! Metrics of the HTTP server: open connections, connections the server closed and why,
//! requests that ran out of time, basic-auth failures and bcrypt verifications. Each binary
//! registers them in its own registry (under its own prefix) with [`WebMetrics::register`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why the server closed a connection (`{reason}` of `http_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The request header did not arrive within `header_timeout`.
    HeaderTimeout,
    /// No request within `idle_timeout` on a kept-alive connection.
    IdleTimeout,
    /// The TLS handshake failed or did not finish within `tls_handshake_timeout`.
    TlsHandshake,
    /// Closed at the connection cap to make room for a new connection.
    Evicted,
    /// A new connection closed at once: at the cap, every connection had a request in flight.
    Rejected,
}

impl CloseReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::TlsHandshake => "tls_handshake",
            Self::Evicted => "evicted",
            Self::Rejected => "rejected",
        }
    }
}

/// `{reason}` label set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// A [`CloseReason`].
    pub reason: String,
}

/// The HTTP server's metrics (cheap to clone: every clone counts into the same series).
#[derive(Debug, Clone, Default)]
pub struct WebMetrics {
    /// `http_connections`: connections open now.
    pub connections: Gauge,
    /// `http_connections_closed_total{reason}`: connections the server closed.
    pub closed: Family<CloseLabels, Counter>,
    /// `http_request_timeouts_total`: requests answered 503 after `request_timeout`.
    pub request_timeouts: Counter,
    /// `http_basic_auth_failures_total`: requests whose basic credentials were refused.
    pub auth_failures: Counter,
    /// `http_bcrypt_verifications_total`: bcrypt hash comparisons run (cache misses).
    pub bcrypt_verifications: Counter,
}

impl WebMetrics {
    /// Counts a connection the server closed.
    pub fn closed(&self, reason: CloseReason) {
        self.closed
            .get_or_create(&CloseLabels {
                reason: reason.as_str().to_owned(),
            })
            .inc();
    }

    /// How many connections the server closed for `reason`.
    pub fn closed_count(&self, reason: CloseReason) -> u64 {
        self.closed
            .get_or_create(&CloseLabels {
                reason: reason.as_str().to_owned(),
            })
            .get()
    }

    /// Registers every series in `registry` (names get the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections",
            "HTTP connections open",
            self.connections.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP connections closed by the server, by reason (header_timeout, idle_timeout, tls_handshake, evicted at the connection cap, rejected at the cap)",
            self.closed.clone(),
        );
        registry.register(
            "http_request_timeouts",
            "HTTP requests answered 503 after the request timeout",
            self.request_timeouts.clone(),
        );
        registry.register(
            "http_basic_auth_failures",
            "HTTP requests whose basic-auth credentials were refused",
            self.auth_failures.clone(),
        );
        registry.register(
            "http_bcrypt_verifications",
            "bcrypt password verifications run (requests not answered from the caches)",
            self.bcrypt_verifications.clone(),
        );
    }
}
