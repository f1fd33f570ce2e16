//! Security of the test WebHDFS server: what a NameNode with `hadoop.security.authentication =
//! kerberos` does in front of its WebHDFS endpoints, and the delegation tokens it issues.
//!
//! Written from the Hadoop documentation:
//! * `WebHDFS.md`, "Authentication": with security on, a request authenticates with Kerberos
//!   SPNEGO (`curl --negotiate`) or with a delegation token (`delegation=<token>`); `user.name`
//!   is the pseudo authentication of clusters *without* security and is rejected (401) here;
//! * `WebHDFS.md`, "Delegation Token Operations": `GET op=GETDELEGATIONTOKEN&renewer=<user>`
//!   answers `{"Token": {"urlString": ..}}`, `PUT op=RENEWDELEGATIONTOKEN&token=<token>`
//!   answers `{"long": <new expiration time in ms>}`, `PUT op=CANCELDELEGATIONTOKEN&token=..`
//!   answers 200; they require Kerberos (not a token);
//! * hadoop-auth ("Hadoop Auth, Java HTTP SPNEGO", `index.html` and `Configuration.html`):
//!   the `AuthenticationFilter` answers an unauthenticated request 401 with
//!   `WWW-Authenticate: Negotiate`, accepts `Authorization: Negotiate <token>` through the
//!   service keytab, and then sets a signed `hadoop.auth` cookie (`u=<user>&p=<principal>&
//!   t=kerberos&e=<expiry ms>&s=<signature>`) valid for `token.validity`, which later
//!   requests present instead of SPNEGO until it expires.
//!
//! The signature here is a random nonce the server remembers (hadoop-auth signs with a
//! secret; for a client both are opaque). Tokens are encoded as Hadoop encodes them
//! (`Token.encodeToUrlString` of a delegation token identifier), with an expiry extended by
//! renewals (`renew interval`) up to a maximum date (`max lifetime`), both configurable short.
//! A redirect to the DataNode carries `delegation=<token>` instead of `user.name`, as
//! `NamenodeWebHdfsMethods.redirectURI` does on a secure cluster (the client's own token, or a
//! new one for a SPNEGO-authenticated request), and the DataNode accepts only valid tokens.
//! Every authentication is counted by kind for the tests' oracles.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hyper::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderValue, SET_COOKIE, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};

use super::handlers::{ParsedRequest, Reply};
use super::lock;
use super::namespace::{RemoteException, push_json_str};

/// Name of hadoop-auth's cookie.
pub const AUTH_COOKIE: &str = "hadoop.auth";

/// What the server needs of a GSSAPI acceptor (the service keytab side of SPNEGO).
pub trait SpnegoAcceptor: Send + Sync + 'static {
    /// Accepts one SPNEGO initial token: the client's principal and the reply token, if any.
    fn accept(&self, token: &[u8]) -> Result<(String, Option<Vec<u8>>), String>;
}

/// How a request was authenticated (counted by [`Security::count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthKind {
    /// `Authorization: Negotiate` accepted (a SPNEGO handshake).
    Negotiate,
    /// A valid `hadoop.auth` cookie.
    Cookie,
    /// A valid `delegation=` token (NameNode or DataNode).
    Delegation,
    /// Refused: 401 (no or bad credentials, `user.name` only) or an invalid token.
    Rejected,
}

/// Security settings of a server ([`super::ServerOptions::kerberos`] and friends).
#[derive(Clone)]
pub struct SecurityOptions {
    pub(crate) acceptor: Arc<dyn SpnegoAcceptor>,
    /// Short names allowed to use the cluster (`None`: every authenticated principal).
    pub(crate) allowed_users: Option<Vec<String>>,
    /// `token.validity` of the `hadoop.auth` cookie.
    pub(crate) cookie_validity: Duration,
    /// `dfs.namenode.delegation.token.renew-interval`.
    pub(crate) token_renew_interval: Duration,
    /// `dfs.namenode.delegation.token.max-lifetime`.
    pub(crate) token_max_lifetime: Duration,
}

impl std::fmt::Debug for SecurityOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityOptions")
            .field("allowed_users", &self.allowed_users)
            .field("cookie_validity", &self.cookie_validity)
            .field("token_renew_interval", &self.token_renew_interval)
            .field("token_max_lifetime", &self.token_max_lifetime)
            .finish_non_exhaustive()
    }
}

impl SecurityOptions {
    /// Hadoop's defaults: cookie 10 h (`token.validity` 36000 s), tokens renewable for a day
    /// up to seven days.
    pub fn new(acceptor: Arc<dyn SpnegoAcceptor>) -> Self {
        Self {
            acceptor,
            allowed_users: None,
            cookie_validity: Duration::from_secs(36_000),
            token_renew_interval: Duration::from_secs(24 * 3600),
            token_max_lifetime: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl SecurityOptions {
    /// Only these short names may use the cluster; other principals authenticate but are
    /// refused (403 `AccessControlException`).
    pub fn allowed_users(mut self, users: &[&str]) -> Self {
        self.allowed_users = Some(users.iter().map(|u| (*u).to_owned()).collect());
        self
    }
}

/// The real GSSAPI acceptor of `principal` from `keytab` (the KDC's service keys), as the
/// NameNode's `KerberosAuthenticationHandler` uses its `HTTP/_HOST` keytab.
pub fn keytab_acceptor(keytab: &Path, principal: &str) -> Result<Arc<dyn SpnegoAcceptor>, String> {
    Ok(Arc::new(crate::gss_acceptor::Acceptor::new(
        keytab, principal,
    )?))
}

impl SpnegoAcceptor for crate::gss_acceptor::Acceptor {
    fn accept(&self, token: &[u8]) -> Result<(String, Option<Vec<u8>>), String> {
        match crate::gss_acceptor::Acceptor::accept(self, token)? {
            (reply, Some(principal)) => Ok((principal, reply)),
            (_, None) => Err("the SPNEGO context needs more than one token".to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
struct TokenInfo {
    owner: String,
    renewer: String,
    expires_ms: i64,
    max_ms: i64,
}

/// Authentication state shared by the listeners of one server.
pub(crate) struct Security {
    opts: Mutex<SecurityOptions>,
    cookies: Mutex<HashMap<String, (String, i64)>>,
    tokens: Mutex<HashMap<String, TokenInfo>>,
    sequence: AtomicU64,
    counts: Mutex<HashMap<AuthKind, u64>>,
    /// Principals whose SPNEGO handshakes were accepted, in order.
    principals: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

/// The outcome of the authentication step of one NameNode request.
pub(crate) enum Authenticated {
    /// Proceed as this (short) user; `token` is the token the request came with, `cookie`
    /// a `Set-Cookie` to add to the answer.
    User {
        user: String,
        kind: AuthKind,
        token: Option<String>,
        cookie: Option<String>,
        reply_token: Option<String>,
    },
    /// Answer this.
    Refuse(Reply),
}

fn short_name(principal: &str) -> String {
    principal
        .split(['/', '@'])
        .next()
        .unwrap_or(principal)
        .to_owned()
}

fn unauthorized(message: &str) -> Reply {
    // 401: `Reply::into_response` adds `WWW-Authenticate: Negotiate`.
    Reply::Error(RemoteException::with_status(
        401,
        "SecurityException",
        message,
    ))
}

impl Security {
    pub(crate) fn new(opts: SecurityOptions) -> Self {
        Self {
            opts: Mutex::new(opts),
            cookies: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(0),
            counts: Mutex::new(HashMap::new()),
            principals: Mutex::new(Vec::new()),
        }
    }

    fn opts(&self) -> SecurityOptions {
        lock(&self.opts).clone()
    }

    pub(crate) fn count(&self, kind: AuthKind) -> u64 {
        lock(&self.counts).get(&kind).copied().unwrap_or(0)
    }

    fn bump(&self, kind: AuthKind) {
        *lock(&self.counts).entry(kind).or_insert(0) += 1;
    }

    pub(crate) fn reset_counts(&self) {
        lock(&self.counts).clear();
        lock(&self.principals).clear();
    }

    pub(crate) fn principals(&self) -> Vec<String> {
        lock(&self.principals).clone()
    }

    /// Forgets every delegation token and cookie (a NameNode restart without its state).
    pub(crate) fn forget_all(&self) {
        lock(&self.tokens).clear();
        lock(&self.cookies).clear();
    }

    /// Changes the token lifetimes (new tokens and renewals use them).
    pub(crate) fn set_token_lifetimes(&self, renew_interval: Duration, max_lifetime: Duration) {
        let mut o = lock(&self.opts);
        o.token_renew_interval = renew_interval;
        o.token_max_lifetime = max_lifetime;
    }

    /// Changes the cookie validity (new cookies use it).
    pub(crate) fn set_cookie_validity(&self, validity: Duration) {
        lock(&self.opts).cookie_validity = validity;
    }

    /// Tokens the server knows now.
    pub(crate) fn live_tokens(&self) -> usize {
        lock(&self.tokens).len()
    }

    fn allowed(&self, user: &str) -> bool {
        lock(&self.opts)
            .allowed_users
            .as_ref()
            .is_none_or(|users| users.iter().any(|u| u == user))
    }

    /// The authentication step of a NameNode request: a `delegation` token, else
    /// `Authorization: Negotiate`, else the `hadoop.auth` cookie; nothing else (`user.name`
    /// included) is accepted.
    pub(crate) fn authenticate(
        &self,
        req: &ParsedRequest,
        headers: &HeaderMap,
        now_ms: i64,
    ) -> Authenticated {
        if let Some(token) = req.param("delegation").filter(|t| !t.is_empty()) {
            return match self.verify_token(token, now_ms) {
                Ok(owner) => {
                    self.bump(AuthKind::Delegation);
                    Authenticated::User {
                        user: owner,
                        kind: AuthKind::Delegation,
                        token: Some(token.to_owned()),
                        cookie: None,
                        reply_token: None,
                    }
                }
                Err(e) => {
                    self.bump(AuthKind::Rejected);
                    Authenticated::Refuse(Reply::Error(e))
                }
            };
        }
        let negotiate = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("negotiate")
                    .then(|| rest.trim().to_owned())
            });
        if let Some(b64) = negotiate {
            let Ok(token) = base64::engine::general_purpose::STANDARD.decode(&b64) else {
                self.bump(AuthKind::Rejected);
                return Authenticated::Refuse(unauthorized("Negotiate token is not base64"));
            };
            let acceptor = lock(&self.opts).acceptor.clone();
            return match acceptor.accept(&token) {
                Ok((principal, reply)) => {
                    let user = short_name(&principal);
                    if !self.allowed(&user) {
                        self.bump(AuthKind::Rejected);
                        return Authenticated::Refuse(Reply::Error(RemoteException::new(
                            "AccessControlException",
                            format!("Permission denied: user {principal} is not allowed"),
                        )));
                    }
                    self.bump(AuthKind::Negotiate);
                    lock(&self.principals).push(principal.clone());
                    let cookie = self.new_cookie(&user, &principal, now_ms);
                    Authenticated::User {
                        user,
                        kind: AuthKind::Negotiate,
                        token: None,
                        cookie: Some(cookie),
                        reply_token: reply
                            .map(|r| base64::engine::general_purpose::STANDARD.encode(r)),
                    }
                }
                Err(e) => {
                    self.bump(AuthKind::Rejected);
                    Authenticated::Refuse(unauthorized(&format!(
                        "GSSException: SPNEGO authentication failed: {e}"
                    )))
                }
            };
        }
        if let Some(value) = cookie_value(headers) {
            if let Some(user) = self.verify_cookie(&value, now_ms) {
                self.bump(AuthKind::Cookie);
                return Authenticated::User {
                    user,
                    kind: AuthKind::Cookie,
                    token: None,
                    cookie: None,
                    reply_token: None,
                };
            }
        }
        self.bump(AuthKind::Rejected);
        let message = if req.param("user.name").is_some() {
            "Authentication required: security is enabled, user.name is not accepted"
        } else {
            "Authentication required"
        };
        Authenticated::Refuse(unauthorized(message))
    }

    fn new_cookie(&self, user: &str, principal: &str, now_ms: i64) -> String {
        let validity = i64::try_from(self.opts().cookie_validity.as_millis()).unwrap_or(i64::MAX);
        let expires = now_ms.saturating_add(validity);
        let nonce: u128 = rand::random();
        let value = format!("u={user}&p={principal}&t=kerberos&e={expires}&s={nonce:032x}");
        lock(&self.cookies).insert(value.clone(), (user.to_owned(), expires));
        format!("{AUTH_COOKIE}=\"{value}\"; Path=/; HttpOnly")
    }

    fn verify_cookie(&self, value: &str, now_ms: i64) -> Option<String> {
        let value = value.trim_matches('"');
        let mut cookies = lock(&self.cookies);
        let (user, expires) = cookies.get(value)?.clone();
        if expires <= now_ms {
            cookies.remove(value);
            return None;
        }
        Some(user)
    }

    /// A new token (Hadoop's encoding), valid for one renew interval.
    pub(crate) fn issue_token(
        &self,
        owner: &str,
        renewer: &str,
        service: &str,
        now_ms: i64,
    ) -> String {
        let o = self.opts();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let max_ms = now_ms.saturating_add(ms(o.token_max_lifetime));
        let expires_ms = now_ms
            .saturating_add(ms(o.token_renew_interval))
            .min(max_ms);
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let url = encode_token(owner, renewer, now_ms, max_ms, seq, service);
        lock(&self.tokens).insert(
            url.clone(),
            TokenInfo {
                owner: owner.to_owned(),
                renewer: renewer.to_owned(),
                expires_ms,
                max_ms,
            },
        );
        url
    }

    /// The owner of a valid token; `InvalidToken` as the NameNode says it otherwise.
    pub(crate) fn verify_token(&self, token: &str, now_ms: i64) -> Result<String, RemoteException> {
        let tokens = lock(&self.tokens);
        let Some(info) = tokens.get(token) else {
            return Err(RemoteException::new(
                "InvalidToken",
                "token (WEBHDFS delegation token) can't be found in cache",
            ));
        };
        if info.expires_ms < now_ms {
            return Err(RemoteException::new(
                "InvalidToken",
                format!(
                    "token (WEBHDFS delegation token) is expired, current time: {now_ms} \
                     expected renewal time: {}",
                    info.expires_ms
                ),
            ));
        }
        Ok(info.owner.clone())
    }

    /// The token operations, for a user authenticated with Kerberos (SPNEGO or cookie).
    pub(crate) fn token_op(
        &self,
        req: &ParsedRequest,
        op: &str,
        user: &str,
        kind: AuthKind,
        service: &str,
        now_ms: i64,
    ) -> Option<Reply> {
        let is_token_op = matches!(
            (&req.method, op),
            (&Method::GET, "GETDELEGATIONTOKEN")
                | (
                    &Method::PUT,
                    "RENEWDELEGATIONTOKEN" | "CANCELDELEGATIONTOKEN"
                )
        );
        if !is_token_op {
            return None;
        }
        if kind == AuthKind::Delegation {
            return Some(Reply::Error(RemoteException::new(
                "IOException",
                "Delegation Token can be issued only with kerberos or web authentication",
            )));
        }
        Some(match self.token_op_inner(req, op, user, service, now_ms) {
            Ok(r) => r,
            Err(e) => Reply::Error(e),
        })
    }

    fn token_op_inner(
        &self,
        req: &ParsedRequest,
        op: &str,
        user: &str,
        service: &str,
        now_ms: i64,
    ) -> Result<Reply, RemoteException> {
        match op {
            "GETDELEGATIONTOKEN" => {
                let renewer = req
                    .param("renewer")
                    .filter(|r| !r.is_empty())
                    .unwrap_or(user);
                let url = self.issue_token(user, renewer, service, now_ms);
                let mut out = String::from("{\"Token\":{\"urlString\":");
                push_json_str(&mut out, &url);
                out.push_str("}}");
                Ok(Reply::Json(StatusCode::OK, out))
            }
            _ => {
                let token = req
                    .param("token")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        RemoteException::illegal(format!(
                            "Required param token for op: {op} is null or empty"
                        ))
                    })?;
                let mut tokens = lock(&self.tokens);
                let Some(info) = tokens.get_mut(token) else {
                    return Err(RemoteException::new(
                        "InvalidToken",
                        "Renewal request for unknown token",
                    ));
                };
                if op == "CANCELDELEGATIONTOKEN" {
                    if info.owner != user && info.renewer != user {
                        return Err(RemoteException::new(
                            "AccessControlException",
                            format!("{user} is not authorized to cancel the token"),
                        ));
                    }
                    tokens.remove(token);
                    return Ok(Reply::Empty(StatusCode::OK));
                }
                if info.renewer != user {
                    return Err(RemoteException::new(
                        "AccessControlException",
                        format!(
                            "Client {user} tries to renew a token with renewer {}",
                            info.renewer
                        ),
                    ));
                }
                if info.expires_ms < now_ms {
                    return Err(RemoteException::new(
                        "InvalidToken",
                        "Cannot renew an expired token",
                    ));
                }
                let interval =
                    i64::try_from(self.opts().token_renew_interval.as_millis()).unwrap_or(i64::MAX);
                info.expires_ms = now_ms.saturating_add(interval).min(info.max_ms);
                Ok(Reply::Json(
                    StatusCode::OK,
                    format!("{{\"long\":{}}}", info.expires_ms),
                ))
            }
        }
    }

    /// The DataNode's check: a valid `delegation` token, whose owner is the user.
    pub(crate) fn authenticate_datanode(
        &self,
        req: &ParsedRequest,
        now_ms: i64,
    ) -> Result<String, Reply> {
        let Some(token) = req.param("delegation").filter(|t| !t.is_empty()) else {
            self.bump(AuthKind::Rejected);
            return Err(Reply::Error(RemoteException::new(
                "SecurityException",
                "Security enabled but user not authenticated: no delegation token",
            )));
        };
        match self.verify_token(token, now_ms) {
            Ok(owner) => {
                self.bump(AuthKind::Delegation);
                Ok(owner)
            }
            Err(e) => {
                self.bump(AuthKind::Rejected);
                Err(Reply::Error(e))
            }
        }
    }
}

/// The value of the `hadoop.auth` cookie of a request.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == AUTH_COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// Adds what the authentication step wants to an answer: the `hadoop.auth` cookie and the
/// SPNEGO reply token (`WWW-Authenticate: Negotiate <token>`, mutual authentication).
pub(crate) fn decorate(headers: &mut HeaderMap, cookie: Option<&str>, reply_token: Option<&str>) {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.append(SET_COOKIE, v);
    }
    if let Some(v) = reply_token.and_then(|t| HeaderValue::from_str(&format!("Negotiate {t}")).ok())
    {
        headers.insert(WWW_AUTHENTICATE, v);
    }
}

/// `WritableUtils.writeVLong`.
fn write_vlong(out: &mut Vec<u8>, v: i64) {
    if (-112..=127).contains(&v) {
        out.push(v as u8);
        return;
    }
    let (negative, u) = if v < 0 { (true, !v) } else { (false, v) };
    let len = 8 - (u.leading_zeros() / 8) as usize;
    let lead = if negative {
        -120 - len as i64
    } else {
        -112 - len as i64
    };
    out.push(lead as u8);
    out.extend_from_slice(&u.to_be_bytes()[8 - len..]);
}

/// `Text.write`: vint length + UTF-8 bytes.
fn write_text(out: &mut Vec<u8>, s: &str) {
    write_vlong(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// `Token.encodeToUrlString()` of a `DelegationTokenIdentifier` (kind `WEBHDFS delegation`):
/// identifier = version 0, owner, renewer, real user, issueDate, maxDate, sequenceNumber,
/// masterKeyId; then a password, the kind and the service, URL-safe base64 without padding.
fn encode_token(
    owner: &str,
    renewer: &str,
    issue: i64,
    max: i64,
    seq: u64,
    service: &str,
) -> String {
    let mut id = vec![0u8];
    write_text(&mut id, owner);
    write_text(&mut id, renewer);
    write_text(&mut id, "");
    write_vlong(&mut id, issue);
    write_vlong(&mut id, max);
    write_vlong(&mut id, i64::try_from(seq).unwrap_or(i64::MAX));
    write_vlong(&mut id, 1);
    let password: [u8; 20] = rand::random();
    let mut out = Vec::with_capacity(id.len() + 64);
    write_vlong(&mut out, id.len() as i64);
    out.extend_from_slice(&id);
    write_vlong(&mut out, password.len() as i64);
    out.extend_from_slice(&password);
    write_text(&mut out, "WEBHDFS delegation");
    write_text(&mut out, service);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}
