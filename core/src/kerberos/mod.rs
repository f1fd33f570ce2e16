//! Kerberos for the clients of a secured cluster: the process's logins (from a keytab or an
//! existing credential cache), their renewal, and GSSAPI client contexts for SASL `GSSAPI`
//! (HiveServer2, Thrift) and SPNEGO (HTTP `Negotiate`: WebHDFS, HTTP transport).
//!
//! * [`Kerberos::shared`] gives the login of a `[cluster.kerberos]` configuration: one per
//!   distinct configuration per process, shared by every client of every cluster using it;
//!   it logs in lazily (first [`Kerberos::ensure_login`], [`Kerberos::init_context`] or
//!   [`Kerberos::negotiate_header`]) and renews in the background (module `login`).
//! * Failures are [`KerberosError`]s that name the cause (keytab, principal, KDC, clock skew,
//!   expiry) with GSSAPI's own text; [`KerberosError::is_retryable`] says whether waiting
//!   helps.
//! * [`metrics`]: ticket expiry, logins and failures by cause, for the binaries' `/metrics`.
//!
//! # Why `libgssapi`
//!
//! The Hadoop ecosystem's Kerberos is MIT krb5 (or Heimdal, or Active Directory as KDC) driven
//! through GSSAPI, with `krb5.conf` as the operators' single source of realms, KDCs, enctypes
//! and DNS behaviour. Binding the system's GSSAPI library (`libgssapi_krb5`) keeps all of it —
//! the realm configuration, the enctypes, FAST/PKINIT/KCM the site may use, and the security
//! fixes of the distribution — instead of re-implementing Kerberos. `libgssapi` is the
//! maintained safe binding of it (credentials, names, client and server contexts, wrap and
//! unwrap; its bindings come from the installed headers), which `cross-krb5` builds on;
//! `cross-krb5` adds nothing we need and hides the credential handles we do need. The pure-Rust
//! Kerberos crates implement neither the MIT credential-cache types nor krb5.conf.
//!
//! What the safe crate lacks — logging in from a *client keytab* into a *private* ticket
//! cache (MIT's `gss_acquire_cred_from` credential store) — is one small documented FFI
//! module (`ffi`), the only `unsafe` code of this support.
//!
//! Build prerequisites: the MIT development headers and libclang (Debian: `libkrb5-dev
//! libclang-dev`).

mod config;
mod context;
mod error;
mod ffi;
pub mod keytab;
mod login;
pub mod metrics;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use base64::Engine as _;
use libgssapi::credential::{Cred, CredUsage};

pub use config::{CredentialSource, KerberosConfig, RawKerberos};
pub use context::{ClientContext, Mech, ServiceName};
pub use error::{FAILURE_REASONS, KerberosError};
pub use login::LoginInfo;

use login::Login;

/// The logins of the process, by configuration.
static LOGINS: LazyLock<Mutex<HashMap<KerberosConfig, Arc<Login>>>> = LazyLock::new(Mutex::default);

/// The Kerberos login of one configuration; cheap to clone, shared process-wide.
#[derive(Debug, Clone)]
pub struct Kerberos {
    login: Arc<Login>,
}

impl Kerberos {
    /// The process's login for `cfg` (created on first call; never blocks, never reaches
    /// the KDC: the login happens on first use).
    pub fn shared(cfg: &KerberosConfig) -> Self {
        let mut logins = LOGINS.lock().unwrap_or_else(PoisonError::into_inner);
        let login = logins
            .entry(cfg.clone())
            .or_insert_with(|| Arc::new(Login::new(cfg.clone())))
            .clone();
        Self { login }
    }

    /// Logs in when there is no valid ticket (or waits for the login in progress) and says
    /// who is logged in until when. Fails with the cause; after a failure, calls within the
    /// retry delay get the same error without reaching the KDC.
    pub async fn ensure_login(&self) -> Result<LoginInfo, KerberosError> {
        Ok(self.login.credential().await?.info.clone())
    }

    /// A client context for `target` with `mech`, and its first token (to send to the
    /// service). Logs in first when needed; the service ticket is requested on the blocking
    /// pool.
    pub async fn init_context(
        &self,
        target: &ServiceName,
        mech: Mech,
    ) -> Result<(ClientContext, Vec<u8>), KerberosError> {
        let credential = self.login.credential().await?;
        let target = target.clone();
        tokio::task::spawn_blocking(move || ClientContext::initiate(credential, &target, mech))
            .await
            .unwrap_or_else(|e| Err(KerberosError::interrupted("initiate context", &e)))
    }

    /// `Negotiate <base64 token>`: the `Authorization` header of an HTTP request to `host`
    /// (SPNEGO for `HTTP@host`, RFC 4559).
    pub async fn negotiate_header(&self, host: &str) -> Result<String, KerberosError> {
        let (_, token) = self
            .init_context(&ServiceName::http(host)?, Mech::Spnego)
            .await?;
        Ok(format!(
            "Negotiate {}",
            base64::engine::general_purpose::STANDARD.encode(token)
        ))
    }

    /// The configured principal, or the logged-in one once known (credential cache without a
    /// configured principal); `None` before the first login of such a cache.
    pub fn principal(&self) -> Option<String> {
        self.login
            .config()
            .principal()
            .map(str::to_owned)
            .or_else(|| self.login.current().map(|c| c.info.principal.clone()))
    }

    /// The configuration of this login.
    pub fn config(&self) -> &KerberosConfig {
        self.login.config()
    }
}

/// Acceptor (server-side) credentials of `principal` (`None`: any key of the keytab) from
/// `keytab`, without touching `KRB5_KTNAME`: for Kerberized servers (the tests' SPNEGO and
/// SASL servers) using `libgssapi::context::ServerCtx`.
pub fn acceptor_credential(keytab: &Path, principal: Option<&str>) -> Result<Cred, KerberosError> {
    let entries = keytab::read(keytab)?;
    if let Some(p) = principal.filter(|p| !keytab::holds(&entries, p)) {
        return Err(KerberosError::PrincipalNotInKeytab {
            principal: p.to_owned(),
            keytab: keytab.display().to_string(),
            found: keytab::principals(&entries),
        });
    }
    let name = format!("FILE:{}", keytab.display());
    ffi::acquire_from(principal, &[("keytab", &name)], CredUsage::Accept).map_err(|e| {
        KerberosError::from_gss(
            "acquire acceptor credentials",
            principal.unwrap_or("(keytab)"),
            None,
            e,
        )
    })
}
