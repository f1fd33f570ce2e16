//! Delegation tokens obtained over SPNEGO (`auth = "kerberos"` with `delegation_tokens = true`),
//! as Hadoop's `WebHdfsFileSystem` uses them on a secure cluster (`WebHDFS.md`, "Delegation
//! Token Operations": `GETDELEGATIONTOKEN` answers `{"Token": {"urlString": ..}}`,
//! `RENEWDELEGATIONTOKEN` answers `{"long": <new expiration time in ms>}`,
//! `CANCELDELEGATIONTOKEN` answers 200):
//!
//! * the first request fetches a token over SPNEGO (renewer: the NameNode's name for us) and
//!   renews it at once to learn its expiry (the token itself carries only its maximum date);
//! * every NameNode request then sends `delegation=<token>` instead of SPNEGO, and the
//!   NameNode's DataNode redirects (`OPEN`, `CREATE`) carry it on;
//! * the token is renewed once 90% of the time to its expiry has passed (Hadoop's
//!   `DelegationTokenRenewer`: `delay - delay/10`), and a new one is fetched instead when the
//!   renewal fails or can no longer extend it (the maximum lifetime is near);
//! * a token the NameNode no longer knows (`InvalidToken`: expired, cancelled, a restarted
//!   NameNode) is replaced by a new one and the request repeated once, as
//!   `WebHdfsFileSystem.replaceExpiredDelegationToken` does;
//! * [`WebHdfs::cancel_delegation_token`] cancels it (for a shutdown hook).
//!
//! The token is a credential: kept in a [`Secret`], never logged, and stripped from transport
//! errors (`errors::transport_error`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use base64::Engine;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::auth::{Spnego, now_ms};
use super::*;

/// Token operations (always SPNEGO, never with a delegation token).
pub(super) const GETDELEGATIONTOKEN: &str = "GETDELEGATIONTOKEN";
pub(super) const RENEWDELEGATIONTOKEN: &str = "RENEWDELEGATIONTOKEN";
pub(super) const CANCELDELEGATIONTOKEN: &str = "CANCELDELEGATIONTOKEN";

/// The token in use and what is known of its lifetime.
#[derive(Debug, Clone)]
pub(super) struct TokenState {
    pub(super) token: Secret,
    /// When it was obtained or last renewed (ms since the epoch).
    pub(super) renewed_ms: i64,
    /// Expiry from the last renewal; `None` when the renewal was refused (then the token is
    /// used until the NameNode rejects it).
    pub(super) expires_ms: Option<i64>,
    /// Maximum date (from the token's identifier, or learnt when a renewal stopped
    /// extending it).
    pub(super) max_ms: Option<i64>,
}

/// What to do with the token before a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Send it.
    Use,
    /// Renew it first.
    Renew,
    /// Fetch a new one (its maximum lifetime is near).
    Fetch,
}

/// The pure renewal decision: renew after 90% of the time between the last renewal and the
/// expiry; fetch a new token instead when a renewal cannot extend it past the maximum date.
pub(super) fn plan(st: &TokenState, now: i64) -> Plan {
    let Some(expires) = st.expires_ms else {
        return Plan::Use;
    };
    let interval = (expires - st.renewed_ms).max(0);
    let renew_at = st.renewed_ms + interval - interval / 10;
    if now < renew_at {
        return Plan::Use;
    }
    match st.max_ms {
        Some(max) if expires >= max || now + interval / 10 >= max => Plan::Fetch,
        _ => Plan::Renew,
    }
}

/// The token of one cluster's client, and counters of what was done with it.
#[derive(Debug, Default)]
pub(crate) struct DelegationTokens {
    state: tokio::sync::Mutex<Option<TokenState>>,
    obtained: AtomicU64,
    renewed: AtomicU64,
    /// The NameNode answered `{"Token": null}` (security off): SPNEGO / cookie from now on.
    unsupported: AtomicBool,
}

/// What the delegation tokens of a client went through (for `check` and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenStats {
    /// Tokens obtained with `GETDELEGATIONTOKEN`.
    pub obtained: u64,
    /// Successful `RENEWDELEGATIONTOKEN`s (the one right after each fetch included).
    pub renewed: u64,
    /// SPNEGO handshakes (`Authorization: Negotiate` headers sent).
    pub spnego_handshakes: u64,
}

/// `{"Token": {"urlString": ".."}}`.
#[derive(Deserialize)]
struct TokenEnvelope {
    #[serde(rename = "Token")]
    token: Option<WireToken>,
}

#[derive(Deserialize)]
struct WireToken {
    #[serde(rename = "urlString")]
    url_string: String,
}

/// `{"long": N}`.
#[derive(Deserialize)]
struct LongEnvelope {
    long: i64,
}

/// The `maxDate` of a token's identifier. `urlString` is the URL-safe base64 (no padding) of
/// Hadoop's `Token.write`: vint length + identifier, vint length + password, `Text` kind,
/// `Text` service; a delegation token identifier (`AbstractDelegationTokenIdentifier.write`)
/// is a version byte, `Text` owner, renewer and real user, then vlong `issueDate` and vlong
/// `maxDate`. `None` when it does not decode so.
pub(super) fn token_max_date(url_string: &str) -> Option<i64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(url_string.trim_end_matches('='))
        .ok()?;
    let mut r = Reader(&bytes);
    let id_len = usize::try_from(r.vlong()?).ok()?;
    let mut id = Reader(r.take(id_len)?);
    id.take(1)?; // version
    for _ in 0..3 {
        let n = usize::try_from(id.vlong()?).ok()?;
        id.take(n)?;
    }
    let _issue = id.vlong()?;
    id.vlong()
}

/// Reads Hadoop `WritableUtils` variable-length integers.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// `WritableUtils.readVLong`: one byte for -112..=127, else a length byte (-113..=-120
    /// positive, -121..=-128 negative) and that many big-endian bytes.
    fn vlong(&mut self) -> Option<i64> {
        let first = i8::from_ne_bytes([self.take(1)?[0]]);
        if first >= -112 {
            return Some(i64::from(first));
        }
        let (negative, len) = if first < -120 {
            (true, -120 - i32::from(first))
        } else {
            (false, -112 - i32::from(first))
        };
        let mut v: i64 = 0;
        for b in self.take(usize::try_from(len).ok()?)? {
            v = (v << 8) | i64::from(*b);
        }
        Some(if negative { !v } else { v })
    }
}

/// Whether an answer rejects the delegation token itself (`SecretManager.InvalidToken`, or a
/// 401 from an authentication filter that did not accept it).
fn token_rejected(op: &'static str, path: &str, reply: &Reply) -> bool {
    match reply.status.as_u16() {
        401 => true,
        403 => matches!(
            remote_error(op, path, reply.status, &reply.body),
            FsError::Remote { exception, .. } if exception == "InvalidToken"
        ),
        _ => false,
    }
}

impl WebHdfs {
    /// One request to NameNode `i` with the delegation token (fetched or renewed first when
    /// due); a rejected token is replaced and the request repeated once. Without delegation
    /// tokens (`delegation_tokens = false`): SPNEGO / the cookie (`send_spnego`).
    pub(super) async fn send_with_token(
        &self,
        spnego: &Spnego,
        i: usize,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let Some(tokens) = &spnego.tokens else {
            return self.send_spnego(spnego, i, op, method, path, params).await;
        };
        let mut repeated = false;
        loop {
            if tokens.unsupported.load(Ordering::Relaxed) {
                return self.send_spnego(spnego, i, op, method, path, params).await;
            }
            let Some(token) = self.current_token(spnego, tokens).await? else {
                continue;
            };
            let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 1);
            all.push(("delegation", token.expose()));
            all.extend_from_slice(params);
            let reply = self
                .exchange(i, op, method.clone(), path, &all, HeaderMap::new())
                .await?;
            if !repeated && token_rejected(op, path, &reply) {
                tracing::info!(
                    cluster = %self.cluster, namenode = %self.namenodes[i].label, op,
                    "The NameNode rejected the delegation token; fetching a new one."
                );
                let mut state = tokens.state.lock().await;
                if state.as_ref().is_some_and(|s| s.token == token) {
                    *state = None;
                }
                repeated = true;
                continue;
            }
            return checked(op, path, reply);
        }
    }

    /// The token to send, fetched or renewed first when [`plan`] says so. One caller at a
    /// time does that; the others wait for its result.
    async fn current_token(
        &self,
        spnego: &Spnego,
        tokens: &DelegationTokens,
    ) -> Result<Option<Secret>, FsError> {
        let mut state = tokens.state.lock().await;
        let now = now_ms();
        if let Some(st) = state.as_mut() {
            match plan(st, now) {
                Plan::Use => return Ok(Some(st.token.clone())),
                Plan::Renew => match self.renew_token(spnego, &st.token).await {
                    Ok(expires) => {
                        tokens.renewed.fetch_add(1, Ordering::Relaxed);
                        self.count_auth("token_renewed");
                        self.set_token_expiry(Some(expires));
                        if st.expires_ms.is_some_and(|old| expires <= old) {
                            // The renewal no longer extends it: the maximum date is reached.
                            st.max_ms = Some(st.max_ms.map_or(expires, |m| m.min(expires)));
                        }
                        st.renewed_ms = now;
                        st.expires_ms = Some(expires);
                        tracing::debug!(
                            cluster = %self.cluster, expires,
                            "Renewed the delegation token."
                        );
                        return Ok(Some(st.token.clone()));
                    }
                    Err(e) => {
                        self.count_auth("token_renewal_failed");
                        tracing::warn!(
                            cluster = %self.cluster, error = %e,
                            "Renewing the delegation token failed; fetching a new one."
                        );
                    }
                },
                Plan::Fetch => {
                    tracing::info!(
                        cluster = %self.cluster,
                        "The delegation token reaches its maximum lifetime; fetching a new one."
                    );
                }
            }
        }
        *state = None;
        let Some(fresh) = self.fetch_token(spnego, tokens).await? else {
            return Ok(None);
        };
        let token = fresh.token.clone();
        *state = Some(fresh);
        Ok(Some(token))
    }

    /// `GETDELEGATIONTOKEN` over SPNEGO, then a renewal to learn the expiry. `None` (and
    /// tokens off for good) when the NameNode issues none (`{"Token": null}`: security off).
    async fn fetch_token(
        &self,
        spnego: &Spnego,
        tokens: &DelegationTokens,
    ) -> Result<Option<TokenState>, FsError> {
        // No `renewer`: the NameNode then names the renewer itself, with its own mapping of our
        // principal (`auth_to_local`), as `NamenodeWebHdfsMethods.generateDelegationToken`
        // does (`renewer == null ? ugi.getShortUserName() : renewer`); a short name guessed
        // here would be refused at every renewal on clusters with other mapping rules.
        let params: [(&str, &str); 0] = [];
        let reply = self
            .spnego_with_failover(spnego, GETDELEGATIONTOKEN, Method::GET, &params)
            .await?;
        let answer: TokenEnvelope = parse(GETDELEGATIONTOKEN, "/", &reply.body)?;
        let Some(wire) = answer.token else {
            tokens.unsupported.store(true, Ordering::Relaxed);
            tracing::warn!(
                cluster = %self.cluster,
                "The NameNode issues no delegation tokens (security off?); authenticating \
                 every request with SPNEGO instead."
            );
            return Ok(None);
        };
        let token = Secret::new(wire.url_string);
        tokens.obtained.fetch_add(1, Ordering::Relaxed);
        self.count_auth("token_obtained");
        let max_ms = token_max_date(token.expose());
        let renewed_ms = now_ms();
        let expires_ms = match self.renew_token(spnego, &token).await {
            Ok(expires) => {
                tokens.renewed.fetch_add(1, Ordering::Relaxed);
                self.count_auth("token_renewed");
                Some(expires)
            }
            Err(e) => {
                tracing::warn!(
                    cluster = %self.cluster, error = %e,
                    "Cannot renew the new delegation token; it is used until the NameNode \
                     rejects it."
                );
                None
            }
        };
        self.set_token_expiry(expires_ms);
        tracing::info!(
            cluster = %self.cluster, expires_ms, max_ms,
            "Obtained a delegation token over SPNEGO."
        );
        Ok(Some(TokenState {
            token,
            renewed_ms,
            expires_ms,
            max_ms,
        }))
    }

    /// `RENEWDELEGATIONTOKEN` over SPNEGO: the new expiry (ms since the epoch).
    async fn renew_token(&self, spnego: &Spnego, token: &Secret) -> Result<i64, FsError> {
        let params = [("token", token.expose())];
        let reply = self
            .spnego_with_failover(spnego, RENEWDELEGATIONTOKEN, Method::PUT, &params)
            .await?;
        let answer: LongEnvelope = parse(RENEWDELEGATIONTOKEN, "/", &reply.body)?;
        Ok(answer.long)
    }

    /// A token operation on the NameNodes in turn (from the active one), failing over as
    /// `send_with_failover` does; retries are left to the request that needed the token.
    async fn spnego_with_failover(
        &self,
        spnego: &Spnego,
        op: &'static str,
        method: Method,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let n = self.namenodes.len();
        let start = self.active_index();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self
                .send_spnego(spnego, i, op, method.clone(), "/", params)
                .await
            {
                Err(e) if is_failover_error(&e) => last = Some(e),
                other => {
                    if k > 0 {
                        self.active.store(i, Ordering::Relaxed);
                    }
                    return other;
                }
            }
        }
        match last {
            Some(e) if n == 1 => Err(e),
            last => Err(FsError::NoActiveNameNode {
                tried: n,
                last: last.map(|e| e.to_string()).unwrap_or_default(),
            }),
        }
    }

    /// Cancels the delegation token this client holds (`CANCELDELEGATIONTOKEN` over SPNEGO),
    /// for a shutdown hook. `Ok(false)` when it holds none.
    pub async fn cancel_delegation_token(&self) -> Result<bool, FsError> {
        let Some(spnego) = &self.spnego else {
            return Ok(false);
        };
        let Some(tokens) = &spnego.tokens else {
            return Ok(false);
        };
        let Some(st) = tokens.state.lock().await.take() else {
            return Ok(false);
        };
        let params = [("token", st.token.expose())];
        self.spnego_with_failover(spnego, CANCELDELEGATIONTOKEN, Method::PUT, &params)
            .await?;
        Ok(true)
    }

    /// How this client authenticates, for `check` and logs (never the token itself):
    /// `kerberos (SPNEGO as <principal>, delegation tokens)`, `delegation token`,
    /// `simple (user.name=<user>)` or `none`.
    pub fn authentication(&self) -> String {
        match (&self.spnego, self.has_token, &self.user) {
            (Some(spnego), _, _) => format!(
                "kerberos (SPNEGO as {}{})",
                spnego
                    .kerberos
                    .principal()
                    .unwrap_or_else(|| "the configured principal".to_owned()),
                if spnego.tokens.is_some() {
                    ", delegation tokens"
                } else {
                    ""
                }
            ),
            (None, true, _) => "delegation token".to_owned(),
            (None, false, Some(user)) => format!("simple (user.name={user})"),
            (None, false, None) => "none".to_owned(),
        }
    }

    /// What this client's Kerberos authentication did so far (zeros without Kerberos).
    pub fn token_stats(&self) -> TokenStats {
        let Some(spnego) = &self.spnego else {
            return TokenStats::default();
        };
        let (obtained, renewed) = spnego.tokens.as_ref().map_or((0, 0), |t| {
            (
                t.obtained.load(Ordering::Relaxed),
                t.renewed.load(Ordering::Relaxed),
            )
        });
        TokenStats {
            obtained,
            renewed,
            spnego_handshakes: spnego.handshakes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(renewed: i64, expires: Option<i64>, max: Option<i64>) -> TokenState {
        TokenState {
            token: Secret::new("t"),
            renewed_ms: renewed,
            expires_ms: expires,
            max_ms: max,
        }
    }

    #[test]
    fn renews_after_nine_tenths_and_fetches_near_the_maximum() {
        let st = state(0, Some(10_000), Some(100_000));
        assert_eq!(plan(&st, 8_999), Plan::Use);
        assert_eq!(plan(&st, 9_000), Plan::Renew);
        let st = state(90_000, Some(100_000), Some(100_000));
        assert_eq!(plan(&st, 95_000), Plan::Use);
        assert_eq!(plan(&st, 99_000), Plan::Fetch, "capped at the maximum date");
        assert_eq!(plan(&state(0, None, None), i64::MAX), Plan::Use);
    }

    /// `WritableUtils.writeVLong`.
    fn vlong(out: &mut Vec<u8>, v: i64) {
        if (-112..=127).contains(&v) {
            out.push(v as u8);
            return;
        }
        let (neg, u) = if v < 0 { (true, !v) } else { (false, v) };
        let mut len = 0;
        let mut t = u;
        while t != 0 {
            t >>= 8;
            len += 1;
        }
        out.push((if neg { -120 - len } else { -112 - len }) as i8 as u8);
        let bytes = u.to_be_bytes();
        out.extend_from_slice(&bytes[8 - len as usize..]);
    }

    #[test]
    fn reads_the_maximum_date_of_a_hadoop_token() {
        let mut id = vec![0u8];
        for text in ["hsf", "hsf", ""] {
            vlong(&mut id, text.len() as i64);
            id.extend_from_slice(text.as_bytes());
        }
        vlong(&mut id, 1_700_000_000_000);
        vlong(&mut id, 1_700_604_800_000);
        vlong(&mut id, 7);
        vlong(&mut id, 1);
        let mut tok = Vec::new();
        vlong(&mut tok, id.len() as i64);
        tok.extend_from_slice(&id);
        vlong(&mut tok, 2);
        tok.extend_from_slice(b"pw");
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tok);
        assert_eq!(token_max_date(&url), Some(1_700_604_800_000));
        assert_eq!(token_max_date("not a token"), None);
        let mut r = Reader(&[0x85]);
        assert_eq!(r.vlong(), None, "truncated");
        let mut out = Vec::new();
        vlong(&mut out, -1000);
        assert_eq!(Reader(&out).vlong(), Some(-1000));
    }
}
