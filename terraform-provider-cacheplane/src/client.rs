//! The provider's HTTP client of the Cacheplane API: one endpoint, one bearer token, the
//! API's own wire types (`cacheplane-types`) and its one error shape.
//!
//! A call is sent again, after a pause, only when that cannot do anything twice: when
//! the connection could not be made (nothing was sent), when the API answered 429 or 503
//! (it refused before doing anything), or, for calls that are safe to repeat (reads,
//! deletes, operation waits and mutations carrying a `requestId`), after a broken
//! connection or a 502/504 from a proxy. The `requestId` of a mutation is made once by
//! its caller, so every attempt carries the same one and the API answers a repeat with
//! the first attempt's operation.

use std::time::Duration;

use cacheplane_types::secret::Secret;
use cacheplane_types::{ErrorBody, Status};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How long one call may take (operation waits add their own wait to it).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of one call, the first included.
const ATTEMPTS: u32 = 5;

/// What went wrong with a call.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The API answered with an error: its status, message and fields at fault.
    Status(Status),
    /// No usable answer: the API could not be reached, the call timed out, or the answer
    /// did not parse.
    Transport(String),
}

impl ApiError {
    /// Whether the API said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status(s) if s.code == 404)
    }
}

/// `result`, with the API's 404 as `Ok(None)`: a read of a resource that does not exist,
/// or a delete of one already gone.
pub fn absent_as_none<T>(result: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status(s) => write!(f, "{} {}: {}", s.code, s.status, s.message),
            ApiError::Transport(m) => f.write_str(m),
        }
    }
}

/// A client of one Cacheplane API with one token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Secret,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a `Secret`, whose Debug hides it.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

impl Client {
    /// A client of the API at `endpoint` (an `http://` URL such as
    /// `http://127.0.0.1:8080`: the API serves plain HTTP), sending `token`.
    pub fn new(endpoint: &str, token: Secret) -> Result<Client, String> {
        let base = Url::parse(endpoint.trim())
            .ok()
            .filter(|u| u.scheme() == "http" && !u.cannot_be_a_base())
            .ok_or_else(|| {
                format!("'{endpoint}' is not an http:// URL such as http://127.0.0.1:8080")
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!(
                "terraform-provider-cacheplane/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Client { http, base, token })
    }

    /// `GET` a resource.
    pub async fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<T, ApiError> {
        self.call(Method::GET, path, &[], None::<&()>, CALL_TIMEOUT)
            .await
    }

    /// `GET` a resource, `None` when the API answers 404.
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &[&str]) -> Result<Option<T>, ApiError> {
        absent_as_none(self.get(path).await)
    }

    /// One call: `path` segments under `/v1` (each escaped), the query, an optional JSON
    /// body and how long one attempt may take. A 2xx answer is decoded as `T` (an empty
    /// one as JSON `null`, so `()` fits 204); any other is [`ApiError::Status`].
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let url = self.url(path, query);
        let what = format!("{method} {}", url.path());
        let repeatable = repeatable(&method, path, query);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= ATTEMPTS;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(timeout)
                .bearer_auth(self.token.expose());
            if let Some(body) = body {
                req = req.json(body);
            }
            let (status, text) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry = match status {
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => true,
                        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => repeatable,
                        _ => false,
                    };
                    if retry && !last {
                        let wait = retry_after(&resp).unwrap_or_else(|| backoff(attempt));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    match resp.text().await {
                        Ok(text) => (status, text),
                        Err(_) if repeatable && !last => {
                            tokio::time::sleep(backoff(attempt)).await;
                            continue;
                        }
                        Err(e) => {
                            return Err(ApiError::Transport(format!(
                                "{what}: reading the answer: {}",
                                root_cause(&e)
                            )))
                        }
                    }
                }
                Err(e) if (e.is_connect() || repeatable) && !last => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) if e.is_connect() => {
                    return Err(ApiError::Transport(format!(
                        "cannot reach the Cacheplane API at {}: {} (check the provider's \
                         `endpoint`)",
                        self.base,
                        root_cause(&e)
                    )))
                }
                Err(e) => return Err(ApiError::Transport(format!("{what}: {}", root_cause(&e)))),
            };
            if !status.is_success() {
                return Err(ApiError::Status(error_status(status.as_u16(), &text)));
            }
            let text = if text.trim().is_empty() {
                "null"
            } else {
                &text
            };
            return serde_json::from_str(text).map_err(|e| {
                ApiError::Transport(format!(
                    "{what}: the answer is not what the provider expects ({e}); is `endpoint` \
                     a Cacheplane API of the same version?"
                ))
            });
        }
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v1").extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// Whether sending the call again after it may have arrived cannot do anything twice.
fn repeatable(method: &Method, path: &[&str], query: &[(&str, &str)]) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::DELETE)
        || query
            .iter()
            .any(|(k, v)| *k == "requestId" && !v.is_empty())
        || path.last() == Some(&"wait")
}

/// 0.2 s, 0.4 s, 0.8 s, … at most 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(5)).min(5_000))
}

/// The `Retry-After` of a 429 or 503, in seconds, at most 30 s.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

/// The API's error body, or a status made from the HTTP code and the text when the answer
/// is not one (a proxy's error page).
fn error_status(code: u16, text: &str) -> Status {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => body.error,
        Err(_) => Status {
            code,
            status: StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("ERROR")
                .to_uppercase()
                .replace(' ', "_"),
            message: text.trim().chars().take(500).collect(),
            details: Vec::new(),
        },
    }
}

/// The innermost cause of an error: reqwest's own message says little.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_under_v1_with_escaped_segments() {
        let c = Client::new("http://127.0.0.1:8080/base/", Secret::new("t")).unwrap();
        let u = c.url(&["projects", "a b/c", "networks"], &[("networkId", "n")]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/base/v1/projects/a%20b%2Fc/networks?networkId=n"
        );
        assert!(Client::new("127.0.0.1:8080", Secret::new("t")).is_err());
    }

    #[test]
    fn only_calls_that_cannot_act_twice_are_repeated() {
        let create = ["projects", "p", "locations", "l", "instances"];
        assert!(!repeatable(&Method::POST, &create, &[("instanceId", "a")]));
        assert!(repeatable(
            &Method::POST,
            &create,
            &[("instanceId", "a"), ("requestId", "u")]
        ));
        assert!(!repeatable(&Method::PATCH, &create, &[]));
        assert!(repeatable(&Method::DELETE, &create, &[]));
        assert!(repeatable(&Method::POST, &["operations", "x", "wait"], &[]));
    }

    #[test]
    fn the_debug_form_hides_the_token() {
        let c = Client::new("http://127.0.0.1:8080", Secret::new("s3cret-token")).unwrap();
        assert!(!format!("{c:?}").contains("s3cret-token"));
    }

    #[test]
    fn error_bodies_and_others() {
        let s = error_status(
            400,
            r#"{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"m","details":[{"field":"memorySizeGb","description":"d"}]}}"#,
        );
        assert_eq!(s.details[0].field, "memorySizeGb");
        let s = error_status(502, "<html>bad gateway</html>");
        assert_eq!(s.status, "BAD_GATEWAY");
    }
}
