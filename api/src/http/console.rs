//! The web console: the static single-page app built from `console/` (its committed
//! `console/dist/`), embedded in the binary and served under [`PREFIX`] without
//! authentication. The app holds no secret: it asks for a token and calls the public
//! `/v1` API with it, so it can do nothing the token could not. Not part of
//! `openapi.yaml`, which describes the API.
//!
//! `/console`, `/console/` and every path under it that is not a file (the app's own
//! routes, e.g. `/console/instances/my-cache`) answer `index.html`, which is never
//! cached; the hashed bundles under `assets/` are cached for a year. A missing file
//! under `assets/` is a 404, so a stale page never runs the wrong bundle.

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

use crate::error::ApiError;
use crate::state::AppState;

/// Where the console is served.
pub const PREFIX: &str = "/console";

/// The built app (`npm run build` in `console/`).
static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../console/dist");

/// The content security policy: everything from this origin (styles set from scripts
/// through the CSSOM, as the chart library does, need no `unsafe-inline`), nothing
/// inline, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The console's routes, to merge into the application.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PREFIX, get(index))
        .route("/console/", get(index))
        .route("/console/{*path}", get(file))
}

async fn index() -> Response {
    match DIST.get_file("index.html") {
        Some(f) => answer(f.contents(), "index.html", false),
        None => {
            ApiError::NotFound("the console was built without index.html".into()).into_response()
        }
    }
}

async fn file(Path(path): Path<String>) -> Response {
    if let Some(f) = DIST.get_file(&path) {
        let hashed = path.starts_with("assets/");
        return answer(f.contents(), &path, hashed);
    }
    if path.starts_with("assets/") || path.contains('.') {
        return ApiError::NotFound(format!("no such file: {PREFIX}/{path}")).into_response();
    }
    index().await
}

/// A file's answer: its content type, its caching (a year for hashed bundles, none for
/// the rest) and the security headers.
fn answer(body: &'static [u8], path: &str, hashed: bool) -> Response {
    let cache = if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let headers: [(HeaderName, HeaderValue); 6] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// The content type of a built file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "map") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_is_embedded_with_its_bundles() {
        let index = DIST
            .get_file("index.html")
            .expect("console/dist/index.html");
        let html = std::str::from_utf8(index.contents()).expect("utf-8");
        assert!(html.contains("/console/assets/"), "{html}");
        assert!(DIST
            .get_dir("assets")
            .is_some_and(|d| d.files().count() >= 2));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
