//! Client security contexts: the service a context is for ([`ServiceName`], with Hadoop's
//! `_HOST` substitution), the mechanism ([`Mech`]) and the context itself ([`ClientContext`]:
//! tokens, and wrap/unwrap for SASL's integrity and confidentiality layers).

use std::sync::Arc;

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext as _};
use libgssapi::name::Name;
use libgssapi::oid::{
    GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL,
};

use super::KerberosError;
use super::login::Credential;

/// The service a context is initiated for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServiceName {
    /// `service@host` (GSSAPI host-based service name), e.g. `HTTP@namenode.example.com`:
    /// GSSAPI makes it `service/host@<realm of host>`.
    HostBased {
        /// `HTTP`, `hive`…
        service: String,
        /// The host, lower-case.
        host: String,
    },
    /// A full Kerberos principal, e.g. `hive/hs2.example.com@EXAMPLE.COM`.
    Principal(String),
}

impl ServiceName {
    /// From a Hadoop-style pattern: a principal whose host component may be `_HOST`
    /// (`hive/_HOST@EXAMPLE.COM`: `_HOST` becomes `host` lower-cased, as Hadoop's
    /// `SecurityUtil.getServerPrincipal` does), or a bare service name (`HTTP`: the
    /// host-based name `HTTP@host`).
    pub fn from_pattern(pattern: &str, host: &str) -> Result<Self, KerberosError> {
        let bad = |m: &str| KerberosError::BadName {
            name: pattern.to_owned(),
            message: m.to_owned(),
        };
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(bad("empty service name"));
        }
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let needs_host = pattern.contains("_HOST") || !pattern.contains(['/', '@']);
        if needs_host && (host.is_empty() || host == "0.0.0.0") {
            return Err(bad("no host to substitute for _HOST"));
        }
        if !pattern.contains(['/', '@']) {
            return Ok(Self::HostBased {
                service: pattern.to_owned(),
                host,
            });
        }
        // service/_HOST@REALM: only a whole `_HOST` component is replaced.
        let (name, realm) = match pattern.split_once('@') {
            Some((n, r)) => (n, Some(r)),
            None => (pattern, None),
        };
        let name = name
            .split('/')
            .map(|c| if c == "_HOST" { host.as_str() } else { c })
            .collect::<Vec<_>>()
            .join("/");
        Ok(Self::Principal(match realm {
            Some(r) => format!("{name}@{r}"),
            None => name,
        }))
    }

    /// The service a `host` serves SPNEGO on: `HTTP@host`.
    pub fn http(host: &str) -> Result<Self, KerberosError> {
        Self::from_pattern("HTTP", host)
    }

    pub(super) fn to_gss(&self) -> Result<Name, KerberosError> {
        let (text, kind) = match self {
            Self::HostBased { service, host } => {
                (format!("{service}@{host}"), GSS_NT_HOSTBASED_SERVICE)
            }
            Self::Principal(p) => (p.clone(), GSS_NT_KRB5_PRINCIPAL),
        };
        Name::new(text.as_bytes(), Some(kind)).map_err(|e| KerberosError::BadName {
            name: text,
            message: e.to_string(),
        })
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HostBased { service, host } => write!(f, "{service}@{host}"),
            Self::Principal(p) => f.write_str(p),
        }
    }
}

/// The GSSAPI mechanism of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mech {
    /// Raw Kerberos 5 (RFC 4121): SASL `GSSAPI` (HiveServer2, the Thrift services).
    Krb5,
    /// SPNEGO (RFC 4178) negotiating Kerberos 5: HTTP `Negotiate` (WebHDFS, HTTP transport).
    Spnego,
}

/// The client side of a security context. Keeps the credential it was made from alive, so a
/// renewal of the login does not affect it.
#[derive(Debug)]
pub struct ClientContext {
    // Declared first: released before the credential (and its cache).
    ctx: ClientCtx,
    target: String,
    credential: Arc<Credential>,
}

impl ClientContext {
    /// Creates the context and its first token (blocking: may ask the KDC for a service
    /// ticket).
    pub(super) fn initiate(
        credential: Arc<Credential>,
        target: &ServiceName,
        mech: Mech,
    ) -> Result<(Self, Vec<u8>), KerberosError> {
        let name = target.to_gss()?;
        let mech = match mech {
            Mech::Krb5 => GSS_MECH_KRB5,
            Mech::Spnego => GSS_MECH_SPNEGO,
        };
        let flags = CtxFlags::GSS_C_MUTUAL_FLAG
            | CtxFlags::GSS_C_SEQUENCE_FLAG
            | CtxFlags::GSS_C_REPLAY_FLAG
            | CtxFlags::GSS_C_INTEG_FLAG
            | CtxFlags::GSS_C_CONF_FLAG;
        let mut ctx = ClientCtx::new(Some(credential.cred.clone()), name, flags, Some(mech));
        let target = target.to_string();
        let token = ctx.step(None, None).map_err(|e| {
            KerberosError::from_gss(
                "initiate context",
                &credential.info.principal,
                Some(&target),
                e,
            )
        })?;
        let token = token.map(|b| b.to_vec()).unwrap_or_default();
        Ok((
            Self {
                ctx,
                target,
                credential,
            },
            token,
        ))
    }

    /// Feeds the peer's token; returns the next token to send, if any. When
    /// [`ClientContext::is_complete`] is true afterwards, the context is established.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, KerberosError> {
        self.ctx
            .step(Some(token), None)
            .map(|t| t.map(|b| b.to_vec()))
            .map_err(|e| self.error("continue context", e))
    }

    /// Whether the context is established (mutual authentication done).
    pub fn is_complete(&self) -> bool {
        self.ctx.is_complete()
    }

    /// Wraps `msg` (RFC 2743 `GSS_Wrap`): integrity-protected, and encrypted when `encrypt`.
    pub fn wrap(&mut self, encrypt: bool, msg: &[u8]) -> Result<Vec<u8>, KerberosError> {
        self.ctx
            .wrap(encrypt, msg)
            .map(|b| b.to_vec())
            .map_err(|e| self.error("wrap", e))
    }

    /// Unwraps a peer's wrapped message, checking its integrity.
    pub fn unwrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, KerberosError> {
        self.ctx
            .unwrap(msg)
            .map(|b| b.to_vec())
            .map_err(|e| self.error("unwrap", e))
    }

    /// The service this context is for.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn error(&self, operation: &'static str, e: libgssapi::error::Error) -> KerberosError {
        KerberosError::from_gss(
            operation,
            &self.credential.info.principal,
            Some(&self.target),
            e,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_substitution_as_hadoop() {
        assert_eq!(
            ServiceName::from_pattern("hive/_HOST@EXAMPLE.COM", "HS2.Example.com").unwrap(),
            ServiceName::Principal("hive/hs2.example.com@EXAMPLE.COM".into())
        );
        assert_eq!(
            ServiceName::from_pattern("hive/_HOST", "h.example.com.").unwrap(),
            ServiceName::Principal("hive/h.example.com".into())
        );
        assert_eq!(
            ServiceName::from_pattern("hive/fixed.host@R", "other")
                .unwrap()
                .to_string(),
            "hive/fixed.host@R"
        );
        let http = ServiceName::from_pattern("HTTP", "NN1").unwrap();
        assert_eq!(
            http,
            ServiceName::HostBased {
                service: "HTTP".into(),
                host: "nn1".into()
            }
        );
        assert_eq!(http.to_string(), "HTTP@nn1");
        assert_eq!(ServiceName::http("nn1").unwrap(), http);
        assert!(ServiceName::from_pattern("hive/_HOST@R", "").is_err());
        assert!(ServiceName::from_pattern("hive/_HOST@R", "0.0.0.0").is_err());
        assert!(ServiceName::from_pattern(" ", "h").is_err());
    }
}
