//! `[server]`: the limits of the HTTP server both binaries share (timeouts, the connection
//! cap, concurrent bcrypt verifications). The section is the same in the exporter's and the
//! agent's configuration file; every field has a default.

use std::time::Duration;

use serde::Deserialize;

/// `[server]` as written, also the validated value (see [`ServerSettings::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Longest time from accepting a connection, or from the first byte of a further request
    /// on a kept-alive connection, until the request's header is complete. Default 10 s.
    #[serde(default = "d_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this. Default 75 s
    /// (above the common one-minute scrape interval, so Prometheus keeps its connection).
    #[serde(default = "d_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest time a request may take, its body included, before it is answered 503.
    /// Default 2 min (above the agent's 60 s plan preview).
    #[serde(default = "d_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest TLS handshake. Default 10 s.
    #[serde(default = "d_tls_handshake_timeout", with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Connections open at once. At the cap a new connection closes one without a request in
    /// flight (never-served slow or silent connections first, then the longest idle); when
    /// every connection has a request in flight, the new one is closed. Lowered to the
    /// open-file limit minus 64 when that is smaller. Default 512.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// bcrypt verifications running at once (each costs tens of milliseconds of CPU).
    /// 0: one less than the number of CPUs, at least 1, so that a flood of passwords leaves
    /// a CPU to answer requests. Default 0.
    #[serde(default)]
    pub basic_auth_concurrency: usize,
}

fn d_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_idle_timeout() -> Duration {
    Duration::from_secs(75)
}
fn d_request_timeout() -> Duration {
    Duration::from_secs(120)
}
fn d_tls_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_max_connections() -> usize {
    512
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_timeout: d_header_timeout(),
            idle_timeout: d_idle_timeout(),
            request_timeout: d_request_timeout(),
            tls_handshake_timeout: d_tls_handshake_timeout(),
            max_connections: d_max_connections(),
            basic_auth_concurrency: 0,
        }
    }
}

impl ServerSettings {
    /// Checks the values; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, d) in [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("request_timeout", self.request_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("server.{name} must be greater than 0"));
            }
        }
        if self.max_connections == 0 {
            return Err("server.max_connections must be at least 1".into());
        }
        Ok(())
    }

    /// bcrypt verifications allowed at once (`basic_auth_concurrency`; 0: the CPUs but one).
    pub fn auth_permits(&self) -> usize {
        if self.basic_auth_concurrency > 0 {
            self.basic_auth_concurrency
        } else {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .saturating_sub(1)
                .max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        server: ServerSettings,
    }

    #[test]
    fn defaults_and_validation() {
        let f: File = toml::from_str("").unwrap();
        assert_eq!(f.server, ServerSettings::default());
        assert!(f.server.validate().is_ok());
        let f: File =
            toml::from_str("[server]\nheader_timeout = \"2s\"\nmax_connections = 8\n").unwrap();
        assert_eq!(f.server.header_timeout, Duration::from_secs(2));
        assert_eq!(f.server.max_connections, 8);
        assert_eq!(f.server.idle_timeout, d_idle_timeout());
        let f: File = toml::from_str("[server]\nidle_timeout = \"0s\"\n").unwrap();
        assert!(f.server.validate().unwrap_err().contains("idle_timeout"));
        assert!(toml::from_str::<File>("[server]\nbogus = 1\n").is_err());
    }
}
