//! The one typed request helper: every call to the API goes through `Client::call`, which
//! builds the URL from path segments (so ids are always escaped), adds the token, sends
//! the JSON body and decodes either the answer or the API's error body.
//!
//! The API URL may be a comma-separated list of API replicas. A call goes to the replica
//! that answered last; one that cannot be reached goes on to the next at once (nothing
//! was sent, so that is always safe). A call that may have reached a replica (the
//! connection broke, no answer in time, or a 502/503 from a proxy in front of it) goes on
//! only when repeating it cannot do a thing twice: a read, a PUT or DELETE, an operation
//! wait, or a mutation carrying a `requestId` (the API answers a repeat with the first
//! request's operation). See "Several API replicas" in docs/architecture.md.

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A client of one API (one or several replicas), with one token.
pub struct Client {
    http: reqwest::Client,
    /// The replicas' base URLs, in the order given (at least one).
    bases: Vec<Url>,
    /// The index in `bases` of the replica that answered last.
    current: AtomicUsize,
    token: Option<String>,
}

impl Client {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`), or at the replicas
    /// of a comma-separated list of such URLs.
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        // Plain HTTP only: the API serves no TLS, and leaving a TLS stack out keeps the
        // build small.
        let bases = base
            .split(',')
            .map(|one| {
                let one = one.trim();
                Url::parse(one)
                    .ok()
                    .filter(|u| u.scheme() == "http" && !u.cannot_be_a_base())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "API URL '{one}' is not an http:// URL such as \
                             http://127.0.0.1:8080 (several replicas: separated by commas)"
                        ))
                    })
            })
            .collect::<Result<Vec<Url>>>()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cachectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            bases,
            current: AtomicUsize::new(0),
            token,
        })
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
        let repeatable = repeatable(&method, path, query);
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let what = format!("{method} {}", self.url(start, path, query).path());
        // Around the list of replicas, CONNECT_ATTEMPTS times at most while none can be
        // reached; a replica that may have seen the call ends it unless it is repeatable.
        let mut tries = 0;
        let response = loop {
            let at = (start + tries) % n;
            tries += 1;
            let last = tries >= n * CONNECT_ATTEMPTS as usize;
            let mut req = self
                .http
                .request(method.clone(), self.url(at, path, query))
                .timeout(timeout);
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let error = match req.send().await {
                Ok(r) if matches!(r.status().as_u16(), 502 | 503) && repeatable && tries < n => {
                    format!("answered {}", r.status())
                }
                Ok(r) => {
                    if at != start {
                        self.current.store(at, Ordering::Relaxed);
                    }
                    break r;
                }
                Err(e) if e.is_connect() && last => {
                    return Err(anyhow!(
                        "cannot reach the API at {}: {} (is it running? --api-url, \
                         CACHECTL_API_URL or `cachectl config set api-url URL`)",
                        self.list(),
                        root_cause(&e)
                    )
                    .into())
                }
                Err(e) if e.is_connect() => root_cause(&e),
                Err(e) if repeatable && tries < n => root_cause(&e),
                Err(e) if e.is_timeout() => {
                    return Err(anyhow!("{what}: no answer within {timeout:?}").into())
                }
                Err(e) => return Err(anyhow!("{what}: {}", root_cause(&e)).into()),
            };
            if n > 1 {
                eprintln!(
                    "note: API replica {} failed ({error}); trying {}",
                    self.bases[at],
                    self.bases[(at + 1) % n]
                );
            }
            // A pause once every replica has been tried.
            if tries % n == 0 {
                tokio::time::sleep(Duration::from_millis(200 << (tries / n))).await;
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

    /// The replicas' URLs, as given.
    fn list(&self) -> String {
        let all: Vec<&str> = self.bases.iter().map(Url::as_str).collect();
        all.join(",")
    }

    fn url(&self, at: usize, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.bases[at].clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// Whether sending the call again (to another replica) after it may have arrived cannot
/// do anything twice: reads, PUT and DELETE (a second delete answers the delete under
/// way), an operation wait, and any call carrying a `requestId`.
fn repeatable(method: &Method, path: &[&str], query: &[(&str, &str)]) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    ) || query
        .iter()
        .any(|(k, v)| *k == "requestId" && !v.is_empty())
        || path
            .last()
            .is_some_and(|p| *p == "wait" || p.ends_with(":wait"))
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
            0,
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
    fn a_list_of_replicas_and_what_may_be_sent_again() {
        let c = Client::new("http://127.0.0.1:1, http://127.0.0.1:2/", None).unwrap();
        assert_eq!(c.list(), "http://127.0.0.1:1/,http://127.0.0.1:2/");
        assert_eq!(
            c.url(1, &["v1", "hosts"], &[]).as_str(),
            "http://127.0.0.1:2/v1/hosts"
        );
        let err = Client::new("http://127.0.0.1:1,127.0.0.1:2", None).err();
        assert!(
            matches!(&err, Some(Error::Usage(m)) if m.contains("'127.0.0.1:2'")),
            "{err:?}"
        );
        let create = ["v1", "projects", "p", "locations", "l", "instances"];
        assert!(!repeatable(&Method::POST, &create, &[("instanceId", "a")]));
        assert!(repeatable(&Method::POST, &create, &[("requestId", "u")]));
        assert!(!repeatable(&Method::PATCH, &create, &[]));
        assert!(repeatable(&Method::GET, &create, &[]));
        assert!(repeatable(&Method::DELETE, &create, &[]));
        assert!(repeatable(
            &Method::POST,
            &["v1", "operations", "x", "wait"],
            &[]
        ));
    }

    #[tokio::test]
    async fn a_replica_that_is_down_is_passed_over_and_the_next_one_sticks() {
        use std::io::{Read as _, Write as _};
        let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down_port = down.local_addr().unwrap().port();
        drop(down);
        let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up_port = up.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = up.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\n{\"a\":1}",
                );
            }
        });
        let c = Client::new(
            &format!("http://127.0.0.1:{down_port},http://127.0.0.1:{up_port}"),
            None,
        )
        .unwrap();
        // A POST without requestId too: the refused connection carried nothing.
        let v: serde_json::Value = c
            .post(&["v1", "x"], &[], &serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(
            c.current.load(Ordering::Relaxed),
            1,
            "the answering replica sticks"
        );
        let v: serde_json::Value = c.get(&["v1", "x"], &[]).await.unwrap();
        assert_eq!(v["a"], 1);
        server.join().unwrap();
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
