//! A real GSSAPI acceptor (MIT krb5, the service's keytab) for the tests' Kerberized servers
//! and for checking that our clients' tokens are accepted: raw Kerberos 5 (SASL `GSSAPI`) and
//! SPNEGO (HTTP `Negotiate`) tokens alike.
//!
//! ```ignore
//! let acceptor = Acceptor::new(&kdc.http_keytab(), "HTTP/localhost@HSF.TEST")?;
//! let (reply, client) = acceptor.accept(&token)?; // client: Some("hsf/localhost@HSF.TEST")
//! ```

use std::path::Path;

use libgssapi::context::{SecurityContext as _, ServerCtx};
use libgssapi::credential::Cred;

/// Acceptor credentials of one service principal, from its keytab. Cheap to clone; `Send`
/// and `Sync`.
#[derive(Debug, Clone)]
pub struct Acceptor {
    cred: Cred,
}

impl Acceptor {
    /// Credentials of `principal` from `keytab` (the process's `KRB5_KTNAME` is not used).
    pub fn new(keytab: &Path, principal: &str) -> Result<Self, String> {
        hive_smallfiles_core::kerberos::acceptor_credential(keytab, Some(principal))
            .map(|cred| Self { cred })
            .map_err(|e| e.to_string())
    }

    /// Accepts a one-token context (what HTTP `Negotiate` and Kerberos 5 send first): the
    /// token to return to the client (mutual authentication), if any, and the client's
    /// principal once the context is established.
    pub fn accept(&self, token: &[u8]) -> Result<(Option<Vec<u8>>, Option<String>), String> {
        self.context().step(token)
    }

    /// A context for a multi-token exchange (SASL `GSSAPI` with its security layer).
    pub fn context(&self) -> AcceptorContext {
        AcceptorContext {
            ctx: ServerCtx::new(Some(self.cred.clone())),
        }
    }
}

/// The server side of one security context.
#[derive(Debug)]
pub struct AcceptorContext {
    ctx: ServerCtx,
}

impl AcceptorContext {
    /// Feeds the client's token: the reply token, if any, and the client's principal once the
    /// context is established.
    pub fn step(&mut self, token: &[u8]) -> Result<(Option<Vec<u8>>, Option<String>), String> {
        let reply = self
            .ctx
            .step(token, None)
            .map_err(|e| format!("GSSAPI accept failed: {e}"))?
            .map(|b| b.to_vec());
        let client = if self.ctx.is_complete() {
            Some(
                self.ctx
                    .source_name()
                    .map_err(|e| format!("no client name: {e}"))?
                    .to_string(),
            )
        } else {
            None
        };
        Ok((reply, client))
    }

    /// Whether the context is established.
    pub fn is_complete(&self) -> bool {
        self.ctx.is_complete()
    }

    /// Wraps a message for the client (`encrypt`: confidentiality too).
    pub fn wrap(&mut self, encrypt: bool, msg: &[u8]) -> Result<Vec<u8>, String> {
        self.ctx
            .wrap(encrypt, msg)
            .map(|b| b.to_vec())
            .map_err(|e| format!("GSSAPI wrap failed: {e}"))
    }

    /// Unwraps a client's wrapped message.
    pub fn unwrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        self.ctx
            .unwrap(msg)
            .map(|b| b.to_vec())
            .map_err(|e| format!("GSSAPI unwrap failed: {e}"))
    }
}
