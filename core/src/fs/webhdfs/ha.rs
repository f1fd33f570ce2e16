//! NameNode request plumbing: one request to one NameNode under the cluster's semaphore
//! (`exchange`), authenticated as configured (`send_to`: query parameters, or the Kerberos
//! side in `auth` and `token`), HA failover across the NameNodes (`send_with_failover`),
//! retries with full-jitter backoff (`send`), URLs and the request metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use percent_encoding::utf8_percent_encode;
use rand::Rng;
use reqwest::Method;
use reqwest::header::HeaderMap;

use super::circuit::{self, Admission, Outcome, Transition, TrialGuard};
use super::*;

impl WebHdfs {
    /// Sends one operation with failover across NameNodes and retries of retryable errors,
    /// through the cluster's circuit (`circuit`): while it is open, a new request fails at
    /// once with [`FsError::BackingOff`]; a request already retrying waits for the circuit's
    /// delay (as one of its retries) and then may be its trial. `params` are extra query
    /// parameters (values are encoded here).
    ///
    /// A mutating operation sent through here may be applied twice (a failover or a retry
    /// repeats a request whose answer was lost): see the module documentation.
    pub(super) async fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let mut attempt = 0;
        loop {
            let result = match self.circuit.admit() {
                Ok(admission) => {
                    let guard = TrialGuard::new(&self.circuit, admission);
                    let result = circuit::run_as(
                        admission,
                        self.send_with_failover(admission, op, &method, path, params),
                    )
                    .await;
                    let (outcome, last) = circuit_outcome(&result);
                    let transition = guard.record(outcome, &last);
                    self.circuit_transition(transition, &last);
                    result
                }
                Err(e) => {
                    self.count_rejected();
                    Err(e)
                }
            };
            match result {
                // A new request does not wait for an open circuit: the caller hears at once.
                Err(FsError::BackingOff { .. }) if attempt == 0 => return result,
                Err(FsError::BackingOff { retry_in, .. }) if attempt < self.max_retries => {
                    let delay = self.backoff(attempt).max(retry_in);
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) if e.is_retryable() && attempt < self.max_retries => {
                    let delay = self.backoff(attempt);
                    attempt += 1;
                    tracing::debug!(
                        cluster = %self.cluster, op, path, attempt, ?delay, error = %e,
                        "Retrying WebHDFS request."
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Logs and counts a change of the circuit.
    pub(super) fn circuit_transition(&self, transition: Transition, last: &str) {
        match transition {
            Transition::None => {}
            Transition::Opened(delay) => {
                self.circuit_open.set(1);
                self.backoff_seconds.inc_by(delay.as_secs_f64());
                tracing::warn!(
                    cluster = %self.cluster, ?delay, error = %last,
                    "Every NameNode failed; backing off (requests fail at once until one \
                     probes again)."
                );
            }
            Transition::Closed => {
                self.circuit_open.set(0);
                tracing::info!(cluster = %self.cluster, "A NameNode serves again; no longer backing off.");
            }
        }
    }

    /// Full jitter: uniform in `[0, min(max, initial * 2^attempt)]`.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .retry_initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.retry_max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Tries the NameNodes in order, starting at the remembered active one. Stops before the
    /// next NameNode once the circuit opened under a request admitted while it was closed.
    pub(super) async fn send_with_failover(
        &self,
        admission: Admission,
        op: &'static str,
        method: &Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let n = self.namenodes.len();
        let start = self.active_index();
        let mut last_error = None;
        for k in 0..n {
            self.circuit.still_admits(admission)?;
            let i = (start + k) % n;
            match self.send_to(i, op, method.clone(), path, params).await {
                Err(e) if is_failover_error(&e) => {
                    tracing::debug!(
                        cluster = %self.cluster, namenode = %self.namenodes[i].label, op,
                        error = %e, "NameNode did not serve the request; trying the next one."
                    );
                    last_error = Some(e);
                }
                other => {
                    if k > 0 {
                        self.active.store(i, Ordering::Relaxed);
                        tracing::info!(
                            cluster = %self.cluster, namenode = %self.namenodes[i].label,
                            "Failed over to NameNode."
                        );
                    }
                    return other;
                }
            }
        }
        match last_error {
            // A single endpoint (HttpFS, non-HA): its own error says more.
            Some(e) if n == 1 => Err(e),
            last => Err(FsError::NoActiveNameNode {
                tried: n,
                last: last.map(|e| e.to_string()).unwrap_or_default(),
            }),
        }
    }

    /// One operation on NameNode `i`, authenticated as configured: `user.name` / the
    /// configured token in the query, or (Kerberos) the delegation token obtained over SPNEGO,
    /// or SPNEGO with the `hadoop.auth` cookie. Errors for non-2xx/3xx answers.
    pub(super) async fn send_to(
        &self,
        i: usize,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        match &self.spnego {
            None => {
                let reply = self
                    .exchange(i, op, method, path, params, HeaderMap::new())
                    .await?;
                checked(op, path, reply)
            }
            Some(spnego) => {
                self.send_with_token(spnego, i, op, method, path, params)
                    .await
            }
        }
    }

    /// One HTTP request to NameNode `i` with extra `headers`, holding one permit for its
    /// duration (body included); any status is returned.
    pub(super) async fn exchange(
        &self,
        i: usize,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        headers: HeaderMap,
    ) -> Result<Reply, FsError> {
        let nn = &self.namenodes[i];
        let url = self.url(nn, op, path, params);
        let Ok(permit) = self.permits.acquire().await else {
            return Err(FsError::Connection {
                op,
                path: path.to_owned(),
                message: "client is shut down".to_owned(),
            });
        };
        if let Err(e) = self.circuit.gate() {
            self.count_rejected();
            return Err(e);
        }
        let request = self.client.request(method, url).headers(headers);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count_request(op, None);
                if e.is_connect() {
                    nn.up.set(0);
                }
                return Err(transport_error(op, path, e));
            }
        };
        nn.up.set(1);
        let status = response.status();
        self.count_request(op, Some(status.as_u16()));
        let headers = std::mem::take(response.headers_mut());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(op, path, e))?;
        drop(permit);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `{base}/webhdfs/v1{encoded path}?op={op}{auth}{&k=encoded v}`.
    pub(super) fn url(
        &self,
        nn: &NameNode,
        op: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> String {
        let extra: usize = params.iter().map(|(k, v)| k.len() + v.len() * 3 + 2).sum();
        let mut url = String::with_capacity(
            nn.base.len() + path.len() * 3 + op.len() + self.auth_query.len() + extra + 8,
        );
        url.push_str(&nn.base);
        if !path.starts_with('/') {
            url.push('/');
        }
        for (k, segment) in path.split('/').enumerate() {
            if k > 0 {
                url.push('/');
            }
            push_encoded(&mut url, segment);
        }
        url.push_str("?op=");
        url.push_str(op);
        url.push_str(&self.auth_query);
        for (key, value) in params {
            url.push('&');
            url.push_str(key);
            url.push('=');
            push_encoded(&mut url, value);
        }
        url
    }

    pub(super) fn count_request(&self, op: &'static str, status: Option<u16>) {
        let key = (op, status.unwrap_or(0));
        if let Ok(counters) = self.request_counters.read() {
            if let Some(counter) = counters.get(&key) {
                counter.inc();
                return;
            }
        }
        let labels = RequestLabels {
            cluster: self.cluster.clone(),
            op: op.to_owned(),
            code: status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
        };
        let counter = self.metrics.requests.get_or_create(&labels).clone();
        counter.inc();
        if let Ok(mut counters) = self.request_counters.write() {
            counters.insert(key, counter);
        }
    }
}

/// What a request's result says about the NameNodes, for the circuit: every NameNode failed
/// (`NoActiveNameNode`, or the one endpoint's failover error), one served, or nothing known.
pub(super) fn circuit_outcome(result: &Result<Reply, FsError>) -> (Outcome, String) {
    match result {
        Ok(_) => (Outcome::Served, String::new()),
        Err(e @ FsError::NoActiveNameNode { .. }) => (Outcome::AllDown, e.to_string()),
        Err(e) if is_failover_error(e) => (Outcome::AllDown, e.to_string()),
        Err(
            FsError::Timeout { .. } | FsError::BackingOff { .. } | FsError::Authentication { .. },
        ) => (Outcome::Unknown, String::new()),
        Err(_) => (Outcome::Served, String::new()),
    }
}

/// A 2xx/3xx answer as it is; any other as its [`FsError`].
pub(super) fn checked(op: &'static str, path: &str, reply: Reply) -> Result<Reply, FsError> {
    if reply.status.is_success() || reply.status.is_redirection() {
        Ok(reply)
    } else {
        Err(remote_error(op, path, reply.status, &reply.body))
    }
}

pub(super) fn push_encoded(out: &mut String, value: &str) {
    for chunk in utf8_percent_encode(value, COMPONENT) {
        out.push_str(chunk);
    }
}
