//! A typed client for the agent side of the API: register, heartbeat, config long-poll.
//!
//! The agent may be given several API replicas (`--api-url` is a comma-separated list):
//! every call goes to the address that answered last, and one that cannot be reached,
//! breaks the connection, times out or answers 502/503 sends the call on to the next
//! address at once. Every agent call is safe to repeat (a registration and a heartbeat
//! carry the whole state, a config read changes nothing), so nothing is lost or done
//! twice by sending one again. See "Several API replicas" in docs/architecture.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cacheplane_types::{
    ErrorBody, HeartbeatRequest, HeartbeatResponse, Host, HostConfig, RegisterHostRequest,
};
use serde::de::DeserializeOwned;

use crate::backoff::Retryable;

/// Longest wait for an ordinary (not long-polling) call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API could not be reached or the connection broke.
    #[error("cannot reach the API: {0}")]
    Transport(#[source] reqwest::Error),
    /// The API answered with an error.
    #[error("the API answered {code} {status}: {message}")]
    Status {
        /// HTTP status code.
        code: u16,
        /// Canonical status, e.g. `NOT_FOUND`.
        status: String,
        /// The API's message.
        message: String,
    },
    /// The answer was not what the protocol says.
    #[error("unexpected answer from the API: {0}")]
    Decode(String),
}

impl ApiError {
    /// The HTTP status code, when the API answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport(_) | ApiError::Decode(_) => true,
            ApiError::Status { code, .. } => *code >= 500 || *code == 429 || *code == 408,
        }
    }
}

/// Whether a failed call should go on to the next API address: the replica could not be
/// reached, broke the connection or timed out, or a proxy in front of it answered that it
/// is away (502, 503).
fn try_next(e: &ApiError) -> bool {
    match e {
        ApiError::Transport(_) => true,
        ApiError::Status { code, .. } => matches!(code, 502 | 503),
        ApiError::Decode(_) => false,
    }
}

/// The API as one host's agent sees it.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// The API replicas' base URLs, in the order given.
    bases: Arc<[String]>,
    /// The index in `bases` of the replica that answered last; shared by every clone,
    /// so the heartbeat and the config long-poll move together.
    current: Arc<AtomicUsize>,
    host: String,
    token: String,
}

impl std::fmt::Debug for ApiClient {
    // Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("bases", &self.bases)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for host `host` of the API replicas at `bases` (e.g.
    /// `["http://127.0.0.1:8080"]`; at least one).
    pub fn new(bases: &[String], host: &str, token: &str) -> anyhow::Result<Self> {
        if bases.is_empty() {
            anyhow::bail!("no API address given");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("cacheplane-node-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApiClient {
            http,
            bases: bases
                .iter()
                .map(|b| b.trim_end_matches('/').to_string())
                .collect(),
            current: Arc::new(AtomicUsize::new(0)),
            host: host.to_string(),
            token: token.to_string(),
        })
    }

    fn url(&self, base: &str, suffix: &str) -> String {
        format!("{base}/v1/hosts/{}{suffix}", self.host)
    }

    /// The base URL calls go to now.
    pub fn current_base(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Registers (or re-registers) the host.
    pub async fn register(&self, req: &RegisterHostRequest) -> Result<Host, ApiError> {
        self.call(|base| {
            self.http
                .put(self.url(base, ""))
                .json(req)
                .timeout(CALL_TIMEOUT)
        })
        .await
    }

    /// Reports observed state.
    pub async fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatResponse, ApiError> {
        self.call(|base| {
            self.http
                .post(self.url(base, "/heartbeat"))
                .json(req)
                .timeout(CALL_TIMEOUT)
        })
        .await
    }

    /// The host's config: at once when `known` is `None` or older than the API's, else
    /// once a newer one exists or `wait` passes (then the current one).
    pub async fn config(&self, known: Option<i64>, wait: Duration) -> Result<HostConfig, ApiError> {
        self.call(|base| {
            let rb = self.http.get(self.url(base, "/config"));
            match known {
                Some(g) => rb
                    .query(&[
                        ("generation", g.to_string()),
                        ("timeout", format!("{}ms", wait.as_millis())),
                    ])
                    .timeout(wait + CALL_TIMEOUT),
                None => rb.timeout(CALL_TIMEOUT),
            }
        })
        .await
    }

    /// Sends the request `build` makes for a base URL to the current replica, and on to
    /// each next one (once around the list) while [`try_next`] says so. The replica that
    /// answers becomes the current one.
    async fn call<T: DeserializeOwned>(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut i = 0;
        loop {
            let at = (start + i) % n;
            let base = &self.bases[at];
            match self.send(build(base)).await {
                Err(e) if i + 1 < n && try_next(&e) => {
                    let next = &self.bases[(at + 1) % n];
                    tracing::warn!(api = %base, next = %next, error = %e, "API replica unavailable; trying the next one");
                    i += 1;
                }
                result => {
                    // The replica that answered sticks (a call that failed everywhere
                    // leaves the choice as it was); a concurrent call that moved first wins.
                    let answered = if result.as_ref().is_err_and(try_next) {
                        start
                    } else {
                        at
                    };
                    if answered != start {
                        let _ = self.current.compare_exchange(
                            start,
                            answered,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    return result;
                }
            }
        }
    }

    async fn send<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = rb
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(ApiError::Transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(ApiError::Transport)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ApiError::Decode(e.to_string()));
        }
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => ApiError::Status {
                code: status.as_u16(),
                status: b.error.status,
                message: b.error.message,
            },
            Err(_) => ApiError::Status {
                code: status.as_u16(),
                status: status.canonical_reason().unwrap_or("").to_string(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    /// Answers `answers` connections on a port of its own, each with `status` and a
    /// small JSON body; answers the port.
    async fn server(status: &'static str, answers: usize) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            for _ in 0..answers {
                let (mut s, _) = l.accept().await.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = r#"{"ok":1}"#;
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    async fn get(api: &ApiClient) -> Result<serde_json::Value, ApiError> {
        api.call(|base| api.http.get(api.url(base, "/config")))
            .await
    }

    #[tokio::test]
    async fn calls_move_past_a_replica_that_is_down_or_unavailable_and_stay() {
        let down = format!("http://127.0.0.1:{}", closed_port());
        let away = format!(
            "http://127.0.0.1:{}",
            server("503 Service Unavailable", 1).await
        );
        let up = format!("http://127.0.0.1:{}", server("200 OK", 2).await);
        let api = ApiClient::new(&[down, away, up.clone()], "h", "t").expect("client");
        let answer = get(&api).await.expect("the third replica answers");
        assert_eq!(answer["ok"], 1);
        assert_eq!(api.current_base(), up, "the replica that answered sticks");
        let clone = api.clone();
        assert_eq!(clone.current_base(), up, "clones share the choice");
        get(&clone).await.expect("straight to it");
    }

    #[tokio::test]
    async fn an_error_of_the_api_itself_is_not_sent_elsewhere() {
        let bad = format!("http://127.0.0.1:{}", server("404 Not Found", 1).await);
        let down = format!("http://127.0.0.1:{}", closed_port());
        let api = ApiClient::new(&[bad.clone(), down], "h", "t").expect("client");
        let err = get(&api).await.expect_err("404");
        assert_eq!(err.code(), Some(404));
        assert_eq!(api.current_base(), bad);
        let all_down = ApiClient::new(
            &[
                format!("http://127.0.0.1:{}", closed_port()),
                format!("http://127.0.0.1:{}", closed_port()),
            ],
            "h",
            "t",
        )
        .expect("client");
        assert!(matches!(get(&all_down).await, Err(ApiError::Transport(_))));
        assert!(ApiClient::new(&[], "h", "t").is_err());
    }
}
