//! The one typed request helper: every call to the API goes through `Client::call`, which
//! builds the URL from path segments (so ids are always escaped), adds the token, sends
//! the JSON body and decodes either the answer or the API's error body.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cacheplane_types::{ErrorBody, Status};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// How long one ordinary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts for a call whose connection could not be made: nothing was sent, so
/// retrying is always safe.
const CONNECT_ATTEMPTS: u32 = 3;

/// A client of one API, with one token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        // Plain HTTP only: the API serves no TLS, and leaving a TLS stack out keeps the
        // build small.
        let base = Url::parse(base)
            .ok()
            .filter(|u| u.scheme() == "http" && !u.cannot_be_a_base())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "API URL '{base}' is not an http:// URL such as http://127.0.0.1:8080"
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cachectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { http, base, token })
    }

    /// `GET` a resource.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.call(Method::GET, path, query, None::<&()>, CALL_TIMEOUT)
            .await
    }

    /// `POST` a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T> {
        self.call(Method::POST, path, query, Some(body), CALL_TIMEOUT)
            .await
    }

    /// `PATCH` a JSON body.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T> {
        self.call(Method::PATCH, path, query, Some(body), CALL_TIMEOUT)
            .await
    }

    /// `DELETE` a resource.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.call(Method::DELETE, path, query, None::<&()>, CALL_TIMEOUT)
            .await
    }

    /// One call: `path` segments under the base URL (`["v1", "regions"]`), the query, an
    /// optional JSON body and how long the whole call may take (long-polls need longer).
    /// A 2xx answer is decoded as `T` (an empty one as JSON `null`, so `()` works for 204);
    /// any other is an [`Error::Api`] carrying the API's status and field details.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T> {
        let url = self.url(path, query);
        let what = format!("{method} {}", url.path());
        let mut attempt = 1;
        let response = loop {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(timeout);
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(r) => break r,
                Err(e) if e.is_connect() && attempt < CONNECT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    attempt += 1;
                }
                Err(e) if e.is_connect() => {
                    return Err(anyhow!(
                        "cannot reach the API at {}: {} (is it running? --api-url, \
                         CACHECTL_API_URL or `cachectl config set api-url URL`)",
                        self.base,
                        root_cause(&e)
                    )
                    .into())
                }
                Err(e) if e.is_timeout() => {
                    return Err(anyhow!("{what}: no answer within {timeout:?}").into())
                }
                Err(e) => return Err(anyhow!("{what}: {}", root_cause(&e)).into()),
            }
        };
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        if !status.is_success() {
            return Err(Error::api(error_status(status.as_u16(), &text)));
        }
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|e| {
            anyhow!("{what}: the answer is not what cachectl expects ({e}); is --api-url a Cacheplane API of the same version?").into()
        })
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// The API's error body, or a status made up from the HTTP status and the raw text when
/// the answer is not one (a proxy's error page, say).
fn error_status(code: u16, text: &str) -> Status {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => body.error,
        Err(_) => Status {
            code,
            status: reqwest::StatusCode::from_u16(code)
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

/// The innermost cause: reqwest's own message ("error sending request") says little.
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
    fn urls_escape_segments_and_keep_a_base_path() {
        let c = Client::new("http://127.0.0.1:8080/api/", None).unwrap();
        let u = c.url(
            &["v1", "projects", "a b/c", "networks"],
            &[("networkId", "n 1")],
        );
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/api/v1/projects/a%20b%2Fc/networks?networkId=n+1"
        );
        assert!(matches!(
            Client::new("127.0.0.1:8080", None),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn error_bodies_and_others() {
        let s = error_status(
            404,
            r#"{"error":{"code":404,"status":"NOT_FOUND","message":"no such instance"}}"#,
        );
        assert_eq!((s.code, s.status.as_str()), (404, "NOT_FOUND"));
        let s = error_status(502, "<html>bad gateway</html>");
        assert_eq!(s.status, "BAD_GATEWAY");
        assert_eq!(s.message, "<html>bad gateway</html>");
    }
}
