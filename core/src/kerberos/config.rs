//! `[cluster.kerberos]`: whose credentials the clients of a cluster use (a keytab, or an
//! existing credential cache), and how the login is renewed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, invalid, resolve};
use crate::secret::{SecretKind, check_file_permissions};

/// `[cluster.kerberos]` as written.
///
/// ```toml
/// [cluster.kerberos]
/// principal = "hsf/host.example.com@EXAMPLE.COM"
/// keytab = "/etc/security/keytabs/hsf.keytab"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKerberos {
    /// The principal to log in as. Required with `keytab`; with `ccache`, the cache's own
    /// principal when unset.
    #[serde(default)]
    pub principal: Option<String>,
    /// Keytab holding the principal's keys: the process logs in by itself (no `kinit`), into a
    /// private in-memory ticket cache, and logs in again before the ticket expires.
    #[serde(default)]
    pub keytab: Option<PathBuf>,
    /// An existing credential cache (`FILE:/tmp/krb5cc_1000`, a path, `KEYRING:…`) kept fresh
    /// by someone else (`kinit -R`, k5start): it is re-read every minute, a warning is logged
    /// when it nears its end, and requests fail with "ticket expired" once it has expired.
    #[serde(default)]
    pub ccache: Option<String>,
    /// Fraction of the ticket lifetime after which a keytab login is renewed. Default 0.8
    /// (as Hadoop's UserGroupInformation).
    #[serde(default = "default_renew_at")]
    pub renew_at: f64,
    /// First delay before a failed login is retried; doubles per failure, with jitter.
    /// Default 1s.
    #[serde(default = "default_retry_min", with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest delay between login retries. Default 60s.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// With `ccache`: how long before the cache's ticket expires a warning is logged.
    /// Default 1h.
    #[serde(default = "default_expiry_warning", with = "humantime_serde")]
    pub expiry_warning: Duration,
}

fn default_renew_at() -> f64 {
    0.8
}
fn default_retry_min() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}
fn default_expiry_warning() -> Duration {
    Duration::from_secs(3600)
}

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// Log in from a keytab into a private in-memory cache.
    Keytab {
        /// The principal.
        principal: String,
        /// The keytab file (absolute).
        keytab: PathBuf,
    },
    /// Use an existing credential cache.
    Ccache {
        /// The principal expected in the cache, if configured.
        principal: Option<String>,
        /// The cache name (`TYPE:residual`).
        ccache: String,
    },
}

/// Validated `[cluster.kerberos]`: the key of the process-wide login
/// ([`Kerberos::shared`](super::Kerberos::shared)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KerberosConfig {
    /// Keytab or credential cache.
    pub source: CredentialSource,
    /// Renewal point, in thousandths of the ticket lifetime (800 = 80 %).
    pub renew_at_permille: u16,
    /// First retry delay of a failed login.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Warning period before a credential cache's ticket expires.
    pub expiry_warning: Duration,
}

impl KerberosConfig {
    /// A keytab login with the default settings.
    pub fn keytab(principal: impl Into<String>, keytab: impl Into<PathBuf>) -> Self {
        Self::with_source(CredentialSource::Keytab {
            principal: principal.into(),
            keytab: keytab.into(),
        })
    }

    /// A credential-cache login with the default settings.
    pub fn ccache(principal: Option<String>, ccache: impl Into<String>) -> Self {
        Self::with_source(CredentialSource::Ccache {
            principal,
            ccache: ccache.into(),
        })
    }

    fn with_source(source: CredentialSource) -> Self {
        Self {
            source,
            renew_at_permille: 800,
            retry_min: default_retry_min(),
            retry_max: default_retry_max(),
            expiry_warning: default_expiry_warning(),
        }
    }

    /// The configured principal, if any.
    pub fn principal(&self) -> Option<&str> {
        match &self.source {
            CredentialSource::Keytab { principal, .. } => Some(principal),
            CredentialSource::Ccache { principal, .. } => principal.as_deref(),
        }
    }

    /// What the metrics and logs call this login: the principal, or the cache's name.
    pub fn label(&self) -> String {
        match &self.source {
            CredentialSource::Keytab { principal, .. } => principal.clone(),
            CredentialSource::Ccache { principal, ccache } => {
                principal.clone().unwrap_or_else(|| ccache.clone())
            }
        }
    }
}

impl RawKerberos {
    /// Validates, resolving relative paths against `base` (the configuration file's
    /// directory). Errors name no cluster; see [`RawKerberos::validate_cluster`].
    pub fn validate(self, base: &Path) -> Result<KerberosConfig, ConfigError> {
        self.validate_cluster("-", base)
    }

    /// [`RawKerberos::validate`] for the named cluster (errors name it).
    pub fn validate_cluster(
        self,
        cluster: &str,
        base: &Path,
    ) -> Result<KerberosConfig, ConfigError> {
        let bad = |m: &str| invalid(cluster, format!("kerberos.{m}"));
        if let Some(p) = &self.principal {
            if p.trim().is_empty() || p.trim() != p {
                return Err(bad("principal is empty or has surrounding spaces"));
            }
            if p.contains("_HOST") {
                return Err(bad(
                    "principal: _HOST is not substituted in the login principal; write the host name",
                ));
            }
        }
        let source = match (self.keytab, self.ccache) {
            (Some(_), Some(_)) => return Err(bad("keytab and ccache: set one, not both")),
            (None, None) => return Err(bad("keytab or ccache: one is required")),
            (Some(keytab), None) => CredentialSource::Keytab {
                principal: self
                    .principal
                    .ok_or_else(|| bad("principal is required with keytab"))?,
                // `FILE:/path` (krb5's keytab name) or a path.
                keytab: resolve(
                    base,
                    keytab
                        .to_str()
                        .and_then(|k| k.strip_prefix("FILE:"))
                        .map_or(keytab.as_path(), Path::new),
                ),
            },
            (None, Some(cc)) => CredentialSource::Ccache {
                principal: self.principal,
                ccache: ccache_name(base, &cc).ok_or_else(|| bad("ccache is empty"))?,
            },
        };
        if let CredentialSource::Keytab { keytab, .. } = &source {
            // A keytab is a password: warned about (and counted) when others may read it.
            check_file_permissions(keytab, SecretKind::Keytab);
        }
        if !(self.renew_at > 0.0 && self.renew_at < 1.0) {
            return Err(bad("renew_at must be between 0 and 1 (exclusive)"));
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return Err(bad("retry_min must be positive and at most retry_max"));
        }
        // In (0, 1), so the product is in (0, 1000).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let renew_at_permille = (self.renew_at * 1000.0).round().clamp(1.0, 999.0) as u16;
        Ok(KerberosConfig {
            source,
            renew_at_permille,
            retry_min: self.retry_min,
            retry_max: self.retry_max,
            expiry_warning: self.expiry_warning,
        })
    }
}

/// A cache name with its type: `TYPE:residual` stays as is, a bare path becomes `FILE:<path>`
/// (relative to `base`).
fn ccache_name(base: &Path, cc: &str) -> Option<String> {
    let cc = cc.trim();
    if cc.is_empty() {
        return None;
    }
    // A type prefix is letters before the first colon (`FILE:`, `DIR:`, `KEYRING:`, `KCM:`).
    match cc.split_once(':') {
        Some((ty, _)) if !ty.is_empty() && ty.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(cc.to_owned())
        }
        _ => Some(format!("FILE:{}", resolve(base, Path::new(cc)).display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KerberosConfig, String> {
        let raw: RawKerberos = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.validate_cluster("c", Path::new("/etc/hsf"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keytab_login_with_defaults() {
        let c = parse("principal = \"hsf/h@R\"\nkeytab = \"hsf.keytab\"").unwrap();
        assert_eq!(
            c.source,
            CredentialSource::Keytab {
                principal: "hsf/h@R".into(),
                keytab: "/etc/hsf/hsf.keytab".into()
            }
        );
        assert_eq!(c.renew_at_permille, 800);
        assert_eq!(c.retry_max, Duration::from_secs(60));
        assert_eq!(c, KerberosConfig::keytab("hsf/h@R", "/etc/hsf/hsf.keytab"));
    }

    #[test]
    fn ccache_names() {
        let c = parse("principal = \"p@R\"\nkeytab = \"FILE:/k/p.keytab\"").unwrap();
        assert_eq!(c, KerberosConfig::keytab("p@R", "/k/p.keytab"));
        let c = parse("ccache = \"/tmp/krb5cc_1\"").unwrap();
        assert_eq!(
            c.source,
            CredentialSource::Ccache {
                principal: None,
                ccache: "FILE:/tmp/krb5cc_1".into()
            }
        );
        let c = parse("ccache = \"KEYRING:persistent:1\"\nprincipal = \"u@R\"").unwrap();
        assert_eq!(c.label(), "u@R");
        let c = parse("ccache = \"cc\"").unwrap();
        assert_eq!(c.label(), "FILE:/etc/hsf/cc");
    }

    #[test]
    fn world_readable_keytab_is_reported_at_validation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keytab = dir.path().join("shared.keytab");
        std::fs::write(&keytab, b"\x05\x02").unwrap();
        std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = keytab_count();
        let raw: RawKerberos =
            toml::from_str("principal = \"p@R\"\nkeytab = \"shared.keytab\"").unwrap();
        raw.validate(dir.path()).unwrap();
        // At least (other tests of this process may count their own keytabs meanwhile).
        assert!(keytab_count() > before, "the keytab counts as insecure");
    }

    fn keytab_count() -> u64 {
        crate::secret::insecure_counts()
            .into_iter()
            .find(|(k, _)| *k == SecretKind::Keytab)
            .map_or(0, |(_, n)| n)
    }

    #[test]
    fn rejects_inconsistent_settings() {
        for (text, needle) in [
            ("keytab = \"k\"", "principal is required"),
            ("principal = \"p@R\"", "one is required"),
            (
                "principal = \"p@R\"\nkeytab = \"k\"\nccache = \"c\"",
                "not both",
            ),
            ("principal = \"p/_HOST@R\"\nkeytab = \"k\"", "_HOST"),
            (
                "principal = \"p@R\"\nkeytab = \"k\"\nrenew_at = 1.0",
                "renew_at",
            ),
            (
                "principal = \"p@R\"\nkeytab = \"k\"\nretry_min = \"2m\"",
                "retry_min",
            ),
            (
                "principal = \"p@R\"\nkeytab = \"k\"\nkinit = true",
                "unknown field",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
