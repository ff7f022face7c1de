//! The API starts against a fresh database, serves the catalog, and refuses callers
//! without a token.

mod common;

use cacheplane_testkit::{Api, TestDb};
use reqwest::Method;

#[tokio::test]
async fn starts_serves_regions_and_requires_a_token() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;

    let (status, body) = api.req(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200, "GET /healthz: {body}");

    let (status, body) = api.get("/v1/regions").await;
    assert_eq!(status, 200, "GET /v1/regions: {body}");
    let regions = body["regions"]
        .as_array()
        .unwrap_or_else(|| panic!("no regions array in {body}"));
    let local = regions
        .iter()
        .find(|r| r["regionId"] == "local")
        .unwrap_or_else(|| panic!("region local missing from {body}"));
    assert_eq!(local["name"], "regions/local", "{local}");
    let zones = local["zones"]
        .as_array()
        .unwrap_or_else(|| panic!("no zones array in {local}"));
    assert_eq!(zones.len(), 3, "zones of local: {local}");
    for zone in ["local-a", "local-b", "local-c"] {
        assert!(
            zones.iter().any(|z| z == zone),
            "{zone} missing from {local}"
        );
    }

    let (status, body) = api.req(Method::GET, "/v1/regions", None, None).await;
    assert_eq!(status, 401, "GET /v1/regions without a token: {body}");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED", "{body}");
    assert_eq!(body["error"]["code"], 401, "{body}");
}
