//! A typed client for the agent side of the API: register, heartbeat, config long-poll.

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

/// The API as one host's agent sees it.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    host: String,
    token: String,
}

impl std::fmt::Debug for ApiClient {
    // Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for host `host` of the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, host: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("cacheplane-node-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            host: host.to_string(),
            token: token.to_string(),
        })
    }

    fn url(&self, suffix: &str) -> String {
        format!("{}/v1/hosts/{}{suffix}", self.base, self.host)
    }

    /// Registers (or re-registers) the host.
    pub async fn register(&self, req: &RegisterHostRequest) -> Result<Host, ApiError> {
        let rb = self.http.put(self.url("")).json(req).timeout(CALL_TIMEOUT);
        self.send(rb).await
    }

    /// Reports observed state.
    pub async fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatResponse, ApiError> {
        let rb = self
            .http
            .post(self.url("/heartbeat"))
            .json(req)
            .timeout(CALL_TIMEOUT);
        self.send(rb).await
    }

    /// The host's config: at once when `known` is `None` or older than the API's, else
    /// once a newer one exists or `wait` passes (then the current one).
    pub async fn config(&self, known: Option<i64>, wait: Duration) -> Result<HostConfig, ApiError> {
        let mut rb = self.http.get(self.url("/config"));
        rb = match known {
            Some(g) => rb
                .query(&[
                    ("generation", g.to_string()),
                    ("timeout", format!("{}ms", wait.as_millis())),
                ])
                .timeout(wait + CALL_TIMEOUT),
            None => rb.timeout(CALL_TIMEOUT),
        };
        self.send(rb).await
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
