//! Kerberos failures by cause, from GSSAPI status codes.
//!
//! GSSAPI reports most login failures as major status `GSS_S_FAILURE` or `GSS_S_NO_CRED`
//! with the Kerberos library's error as the minor status. The minor codes below are MIT
//! krb5's com_err values, generated from `src/lib/krb5/error_tables/krb5_err.et` and
//! published in `<krb5/krb5.h>` (error table base `ERROR_TABLE_BASE_krb5` = -1765328384):
//! they are stable across MIT releases because they are part of the wire/ABI contract.
//! The text of `gss_display_status` is kept in every error.

use libgssapi::error::{Error as GssError, MajorFlags};

// krb5_err.et (see the module documentation): code = -1765328384 + index.
/// `KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN`: "Client not found in Kerberos database".
pub(super) const KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = -1_765_328_378;
/// `KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN`: "Server not found in Kerberos database".
pub(super) const KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = -1_765_328_377;
/// `KRB5KDC_ERR_KEY_EXP`: "Password has expired".
pub(super) const KRB5KDC_ERR_KEY_EXP: i32 = -1_765_328_361;
/// `KRB5KDC_ERR_PREAUTH_FAILED`: "Preauthentication failed".
pub(super) const KRB5KDC_ERR_PREAUTH_FAILED: i32 = -1_765_328_360;
/// `KRB5KRB_AP_ERR_BAD_INTEGRITY`: "Decrypt integrity check failed" (the AS reply was
/// encrypted with a key other than the keytab's: wrong key or kvno).
pub(super) const KRB5KRB_AP_ERR_BAD_INTEGRITY: i32 = -1_765_328_353;
/// `KRB5KRB_AP_ERR_TKT_EXPIRED`: "Ticket expired".
pub(super) const KRB5KRB_AP_ERR_TKT_EXPIRED: i32 = -1_765_328_352;
/// `KRB5KRB_AP_ERR_SKEW`: "Clock skew too great".
pub(super) const KRB5KRB_AP_ERR_SKEW: i32 = -1_765_328_347;
/// `KRB5_CC_NOTFOUND`: "Matching credential not found".
pub(super) const KRB5_CC_NOTFOUND: i32 = -1_765_328_243;
/// `KRB5_KDC_UNREACH`: "Cannot contact any KDC for requested realm".
pub(super) const KRB5_KDC_UNREACH: i32 = -1_765_328_228;
/// `KRB5_KT_NOTFOUND`: "Key table entry not found".
pub(super) const KRB5_KT_NOTFOUND: i32 = -1_765_328_203;
/// `KRB5_FCC_NOFILE`: "No credentials cache found".
pub(super) const KRB5_FCC_NOFILE: i32 = -1_765_328_189;
/// `KRB5_PREAUTH_FAILED`: "Generic preauthentication failure".
pub(super) const KRB5_PREAUTH_FAILED: i32 = -1_765_328_174;
/// `KRB5_REALM_CANT_RESOLVE`: "Cannot resolve network address for KDC in requested realm".
pub(super) const KRB5_REALM_CANT_RESOLVE: i32 = -1_765_328_164;
/// `KRB5_KT_KVNONOTFOUND`: "Key version number for principal in key table is incorrect".
pub(super) const KRB5_KT_KVNONOTFOUND: i32 = -1_765_328_154;

/// A Kerberos failure, by cause. Every variant that comes from GSSAPI keeps its text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KerberosError {
    /// The keytab file is missing, unreadable or not a keytab.
    #[error("Kerberos keytab {keytab}: {reason}")]
    Keytab {
        /// The file.
        keytab: String,
        /// Missing, permission denied, not a keytab…
        reason: String,
    },
    /// The keytab has no key for the principal.
    #[error("Kerberos keytab {keytab} has no key for {principal} (it holds: {found})")]
    PrincipalNotInKeytab {
        /// The configured principal.
        principal: String,
        /// The keytab.
        keytab: String,
        /// The principals the keytab does hold.
        found: String,
    },
    /// The KDC does not know the client principal.
    #[error("Kerberos principal {principal} is unknown to the KDC: {message}")]
    PrincipalUnknown {
        /// The principal.
        principal: String,
        /// GSSAPI's text.
        message: String,
    },
    /// The KDC does not know the service principal a context was requested for.
    #[error("Kerberos service principal {service} is unknown to the KDC: {message}")]
    ServiceUnknown {
        /// The service name.
        service: String,
        /// GSSAPI's text.
        message: String,
    },
    /// The KDC rejected the key: the keytab's key or key version (kvno) is not the KDC's
    /// (the principal was re-keyed, or the keytab belongs to another realm).
    #[error(
        "Kerberos pre-authentication failed for {principal} (wrong key or key version in the keytab?): {message}"
    )]
    PreauthFailed {
        /// The principal.
        principal: String,
        /// GSSAPI's text.
        message: String,
    },
    /// This host's clock and the KDC's (or the service's) differ by more than the allowed
    /// skew (5 minutes by default).
    #[error(
        "Kerberos clock skew too great (synchronise this host's clock with the KDC's): {message}"
    )]
    ClockSkew {
        /// GSSAPI's text.
        message: String,
    },
    /// No KDC of the realm answered (down, firewalled, wrong address or port in krb5.conf).
    #[error("Kerberos KDC unreachable: {message}")]
    KdcUnreachable {
        /// GSSAPI's text.
        message: String,
    },
    /// The ticket (of a credential cache, or a context) has expired.
    #[error("Kerberos ticket expired for {principal}: {message}")]
    Expired {
        /// The principal or cache.
        principal: String,
        /// What expired and when.
        message: String,
    },
    /// The credential cache does not exist, is empty, or holds another principal.
    #[error("Kerberos credential cache {ccache}: {message}")]
    Ccache {
        /// The cache name.
        ccache: String,
        /// GSSAPI's text.
        message: String,
    },
    /// A service name or principal that cannot be used.
    #[error("Kerberos name {name:?}: {message}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
    /// Any other GSSAPI failure.
    #[error("GSSAPI {operation} failed: {message} (major 0x{major:08x}, minor {minor})")]
    Gss {
        /// The call (`acquire credentials`, `initiate context`, `wrap`…).
        operation: &'static str,
        /// Major status.
        major: u32,
        /// Minor (mechanism) status.
        minor: u32,
        /// `gss_display_status` text of both.
        message: String,
    },
    /// The blocking task running a GSSAPI call was cancelled or panicked.
    #[error("Kerberos {operation} did not complete: {message}")]
    Interrupted {
        /// The call.
        operation: &'static str,
        /// The runtime's reason.
        message: String,
    },
}

/// The fixed set of `reason` label values of `kerberos_login_failures_total`.
pub const FAILURE_REASONS: [&str; 9] = [
    "keytab",
    "principal_not_in_keytab",
    "principal_unknown",
    "preauth_failed",
    "clock_skew",
    "kdc_unreachable",
    "expired",
    "ccache",
    "other",
];

impl KerberosError {
    /// Whether the same call may succeed later without anyone changing anything: an
    /// unreachable KDC (down, restarting, network) or an interrupted call. A wrong keytab,
    /// an unknown principal, clock skew or an expired credential cache need an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::KdcUnreachable { .. } | Self::Interrupted { .. })
    }

    /// The `reason` label of the failure metric (one of [`FAILURE_REASONS`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Keytab { .. } => "keytab",
            Self::PrincipalNotInKeytab { .. } => "principal_not_in_keytab",
            Self::PrincipalUnknown { .. } => "principal_unknown",
            Self::PreauthFailed { .. } => "preauth_failed",
            Self::ClockSkew { .. } => "clock_skew",
            Self::KdcUnreachable { .. } => "kdc_unreachable",
            Self::Expired { .. } => "expired",
            Self::Ccache { .. } => "ccache",
            Self::ServiceUnknown { .. }
            | Self::BadName { .. }
            | Self::Gss { .. }
            | Self::Interrupted { .. } => "other",
        }
    }

    /// Classifies a GSSAPI failure of `operation`. `principal` is the client principal (or
    /// cache name), `service` the target of a context, when there is one.
    pub(super) fn from_gss(
        operation: &'static str,
        principal: &str,
        service: Option<&str>,
        e: GssError,
    ) -> Self {
        let message = e.to_string().trim().to_owned();
        // Minor statuses are krb5_error_code (int32) values carried in an OM_uint32.
        #[allow(clippy::cast_possible_wrap)]
        let minor = e.minor as i32;
        let principal = principal.to_owned();
        match minor {
            KRB5_KDC_UNREACH | KRB5_REALM_CANT_RESOLVE => Self::KdcUnreachable { message },
            KRB5KRB_AP_ERR_SKEW => Self::ClockSkew { message },
            KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN => Self::PrincipalUnknown { principal, message },
            KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN => Self::ServiceUnknown {
                service: service.unwrap_or("?").to_owned(),
                message,
            },
            KRB5KDC_ERR_PREAUTH_FAILED
            | KRB5_PREAUTH_FAILED
            | KRB5KRB_AP_ERR_BAD_INTEGRITY
            | KRB5_KT_KVNONOTFOUND => Self::PreauthFailed { principal, message },
            KRB5KRB_AP_ERR_TKT_EXPIRED | KRB5KDC_ERR_KEY_EXP => {
                Self::Expired { principal, message }
            }
            KRB5_KT_NOTFOUND => Self::PrincipalNotInKeytab {
                principal,
                keytab: "(keytab)".to_owned(),
                found: message,
            },
            // Routine errors are a number in bits 16..24 (RFC 2744 §3.9.1), not flags.
            _ if routine_error(e.major) == routine_error(MajorFlags::GSS_S_CREDENTIALS_EXPIRED) => {
                Self::Expired { principal, message }
            }
            _ => Self::Gss {
                operation,
                major: e.major.bits(),
                minor: e.minor,
                message,
            },
        }
    }

    /// A failure of a blocking task.
    pub(super) fn interrupted(operation: &'static str, e: &tokio::task::JoinError) -> Self {
        Self::Interrupted {
            operation,
            message: e.to_string(),
        }
    }
}

/// The routine-error field of a major status.
fn routine_error(major: MajorFlags) -> u32 {
    (major.bits() >> 16) & 0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gss(major: MajorFlags, minor: i32) -> GssError {
        #[allow(clippy::cast_sign_loss)]
        GssError {
            major,
            minor: minor as u32,
        }
    }

    #[test]
    fn classifies_mit_minor_codes() {
        let f = MajorFlags::GSS_S_FAILURE;
        let cases = [
            (KRB5_KDC_UNREACH, "kdc_unreachable", true),
            (KRB5KRB_AP_ERR_SKEW, "clock_skew", false),
            (KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN, "principal_unknown", false),
            (KRB5KRB_AP_ERR_BAD_INTEGRITY, "preauth_failed", false),
            (KRB5KDC_ERR_PREAUTH_FAILED, "preauth_failed", false),
            (KRB5KRB_AP_ERR_TKT_EXPIRED, "expired", false),
            (KRB5_KT_NOTFOUND, "principal_not_in_keytab", false),
            (KRB5_FCC_NOFILE, "other", false),
            (KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, "other", false),
        ];
        for (minor, reason, retry) in cases {
            let e =
                KerberosError::from_gss("acquire credentials", "p@R", Some("s@h"), gss(f, minor));
            assert_eq!(e.reason(), reason, "{minor}: {e}");
            assert_eq!(e.is_retryable(), retry, "{minor}");
            assert!(FAILURE_REASONS.contains(&e.reason()));
        }
        let e = KerberosError::from_gss(
            "x",
            "p@R",
            None,
            gss(MajorFlags::GSS_S_CREDENTIALS_EXPIRED, 0),
        );
        assert_eq!(e.reason(), "expired");
        // GSS_S_UNAUTHORIZED (15) has every bit of GSS_S_CREDENTIALS_EXPIRED (11) set.
        let e = KerberosError::from_gss("x", "p@R", None, gss(MajorFlags::GSS_S_UNAUTHORIZED, 0));
        assert_eq!(e.reason(), "other");
    }
}
