//! The web console's serving (`/console`, embedded in the API's binary): no token
//! needed, index.html for the app's own routes, the bundles with their content types
//! and a year's caching, a 404 for a missing bundle, and nothing of it in the /v1
//! document. The browser test (console_browser.rs) drives the app itself.

use cacheplane_testkit::{Api, TestDb};
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};

/// GET `base + path` with no token: status, the named headers, the body.
async fn get(base: &str, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let res = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    (status, headers, body)
}

fn header(h: &reqwest::header::HeaderMap, name: reqwest::header::HeaderName) -> &str {
    h.get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
}

#[tokio::test]
async fn the_console_is_served_without_a_token_with_its_bundles() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let base = &api.base;

    for path in [
        "/console",
        "/console/",
        "/console/instances/my-cache",
        "/console/signin?next=/",
    ] {
        let (status, h, body) = get(base, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            header(&h, CONTENT_TYPE),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(header(&h, CACHE_CONTROL), "no-cache", "{path}");
        assert!(
            header(&h, CONTENT_SECURITY_POLICY).contains("default-src 'self'"),
            "{path}"
        );
        assert!(body.contains("<main id=\"main\""), "{path}: {body}");
    }

    // Every bundle index.html names is served, with its type and a year's caching.
    let (_, _, index) = get(base, "/console/").await;
    let bundles: Vec<&str> = index
        .split('"')
        .filter(|s| s.starts_with("/console/assets/"))
        .collect();
    assert!(bundles.iter().any(|b| b.ends_with(".js")), "{index}");
    assert!(bundles.iter().any(|b| b.ends_with(".css")), "{index}");
    for b in &bundles {
        let (status, h, body) = get(base, b).await;
        assert_eq!(status, 200, "{b}");
        let want = if b.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header(&h, CONTENT_TYPE), want, "{b}");
        assert_eq!(
            header(&h, CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{b}"
        );
        assert!(body.len() > 1000, "{b} is {} bytes", body.len());
        assert!(
            !body.contains("https://"),
            "{b} loads something from the internet"
        );
    }

    // A missing bundle is a 404 in the API's error shape, never index.html.
    let (status, _, body) = get(base, "/console/assets/index-missing.js").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NOT_FOUND"), "{body}");

    // The console is not part of the API's contract.
    let doc = cacheplane_api::http::openapi()
        .to_yaml()
        .expect("the document");
    assert!(
        !doc.contains("/console"),
        "openapi.yaml mentions the console"
    );
}
