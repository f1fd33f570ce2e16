//! The two-step operations (`OPEN`, `CREATE`): the NameNode's 307 redirect, the request to the
//! DataNode it names (no failover, a timeout sized by the bytes moved), and the repetition of
//! both when the second step fails retryably.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, LOCATION};

use super::*;

impl WebHdfs {
    /// The second request of a two-step operation, straight to `url` (a DataNode, or HttpFS
    /// itself): no failover and no retry here, one permit for its duration, counted in
    /// `hive_hdfs_requests_total` under `op`. A `body` is sent as
    /// `application/octet-stream` (HttpFS rejects other content types).
    pub(super) async fn send_to_datanode(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        url: url::Url,
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<Reply, FsError> {
        let Ok(permit) = self.permits.acquire().await else {
            return Err(FsError::Connection {
                op,
                path: path.to_owned(),
                message: "client is shut down".to_owned(),
            });
        };
        let mut request = self.client.request(method, url).timeout(timeout);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count_request(op, None);
                return Err(transport_error(op, path, e));
            }
        };
        let status = response.status();
        self.count_request(op, Some(status.as_u16()));
        let headers = std::mem::take(response.headers_mut());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(op, path, e))?;
        drop(permit);
        if status.is_success() {
            Ok(Reply {
                status,
                headers,
                body,
            })
        } else {
            Err(remote_error(op, path, status, &body))
        }
    }

    /// Runs one two-step operation (`attempt`: the NameNode request, then the DataNode
    /// request) and repeats it whole, with backoff, while the DataNode request fails
    /// retryably, so that the NameNode may choose another DataNode. A failed NameNode
    /// request ends it: `send` has already failed over and retried.
    pub(super) async fn two_step<T, F, Fut>(
        &self,
        op: &'static str,
        path: &str,
        mut attempt: F,
    ) -> Result<T, FsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let mut retries = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(StepError::NameNode(e)) => return Err(e),
                Err(StepError::DataNode(e)) if e.is_retryable() && retries < self.max_retries => {
                    let delay = self.backoff(retries);
                    retries += 1;
                    tracing::debug!(
                        cluster = %self.cluster, op, path, attempt = retries, ?delay, error = %e,
                        "Retrying two-step WebHDFS operation after a DataNode failure."
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(StepError::DataNode(e)) => return Err(e),
            }
        }
    }

    /// Time allowed for a DataNode transfer of `bytes`: the request timeout plus what the
    /// bytes take at [`MIN_TRANSFER_RATE`] (bounded by [`MAX_TRANSFER_TIMEOUT`]).
    pub(super) fn transfer_timeout(&self, bytes: u64) -> Duration {
        let transfer = Duration::from_secs(bytes / MIN_TRANSFER_RATE).min(MAX_TRANSFER_TIMEOUT);
        self.request_timeout.saturating_add(transfer)
    }

    /// One `OPEN`: the NameNode redirects to a DataNode (307), whose answer is the data; a
    /// gateway that serves data itself (HttpFS) answers 200 with the data at once.
    pub(super) async fn open_once(
        &self,
        path: &str,
        params: &[(&str, &str)],
        length: u64,
    ) -> Result<Bytes, StepError> {
        let reply = self
            .send(op::OPEN, Method::GET, path, params)
            .await
            .map_err(StepError::NameNode)?;
        let mut data =
            match redirect_location(op::OPEN, path, &reply).map_err(StepError::NameNode)? {
                None => reply.body,
                Some(url) => {
                    drop(reply);
                    self.send_to_datanode(
                        op::OPEN,
                        Method::GET,
                        path,
                        url,
                        None,
                        self.transfer_timeout(length),
                    )
                    .await
                    .map_err(StepError::DataNode)?
                    .body
                }
            };
        // The servers honour `length`; never hand out more than asked for anyway.
        if let Ok(length) = usize::try_from(length) {
            data.truncate(length);
        }
        Ok(data)
    }
}

/// Why one attempt of a two-step operation failed.
#[derive(Debug)]
pub(super) enum StepError {
    /// The NameNode request (already failed over and retried by `send`).
    NameNode(FsError),
    /// The request to the DataNode the NameNode redirected to.
    DataNode(FsError),
}

/// Where a NameNode's answer redirects to: `Some` for a 3xx (whose `Location` must be an
/// absolute http(s) URL), `None` for a 2xx.
pub(super) fn redirect_location(
    op: &'static str,
    path: &str,
    reply: &Reply,
) -> Result<Option<url::Url>, FsError> {
    if !reply.status.is_redirection() {
        return Ok(None);
    }
    let location = reply
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| FsError::InvalidResponse {
            op,
            path: path.to_owned(),
            message: format!("HTTP {} without a usable Location header", reply.status),
        })?;
    parse_location(op, path, location).map(Some)
}

/// Parses a redirect target. The URL carries the delegation token: it is never put into
/// an error message.
pub(super) fn parse_location(
    op: &'static str,
    path: &str,
    location: &str,
) -> Result<url::Url, FsError> {
    match url::Url::parse(location) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => Err(FsError::InvalidResponse {
            op,
            path: path.to_owned(),
            message: "the redirect Location is not an absolute http(s) URL".to_owned(),
        }),
    }
}
