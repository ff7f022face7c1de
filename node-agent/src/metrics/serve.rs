//! The `/metrics` listener (`--metrics-address`): `GET /metrics` in the Prometheus text
//! format, nothing else. It has no authentication, like node-exporter: the operator binds
//! it to a private or loopback address that only the Prometheus server reaches. The
//! series carry project, location and instance ids and node ids, never a secret.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// The file in the data directory that holds the address the listener is bound to
/// (useful with port 0: tests and scripts read the port there).
pub const ADDRESS_FILE: &str = "metrics-address";

/// Longest wait for a request's headers (idle keep-alive connections included), so that
/// a client that connects and sends nothing does not hold a connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// Pause after a failed accept (e.g. out of file descriptors), so as not to spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Binds `address`, and records the address bound (its port chosen by the kernel when
/// given 0) in [`ADDRESS_FILE`] under `data_dir`.
pub async fn bind(address: SocketAddr, data_dir: &Path) -> anyhow::Result<TcpListener> {
    let file = data_dir.join(ADDRESS_FILE);
    // A stale file from an earlier run must not point anyone at the wrong port.
    let _ = std::fs::remove_file(&file);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-address {address}: cannot listen: {e}"))?;
    let bound = listener.local_addr()?;
    write_atomically(&file, &bound.to_string())?;
    tracing::info!(address = %bound, "metrics listening on /metrics");
    Ok(listener)
}

fn write_atomically(file: &Path, text: &str) -> anyhow::Result<()> {
    let tmp: PathBuf = file.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))
}

/// Serves `metrics` on `listener` until `cancel` fires.
pub async fn serve(listener: TcpListener, metrics: Metrics, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener cannot accept");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("too many metrics connections; one closed");
            continue;
        };
        let metrics = metrics.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = answer(&metrics, &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
}

/// `GET /metrics` (or `HEAD`): the metrics; another method there: 405; another path: 404.
fn answer(metrics: &Metrics, req: &Request<Incoming>) -> Response<String> {
    let plain = |status: StatusCode, body: &str| {
        let mut r = Response::new(format!("{body}\n"));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = Response::new(metrics.render());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    r
}
