//! Authentication and authorisation, in-process on the router: bearer tokens,
//! admin/project/host scopes, revocation, and that a project's token can neither see nor
//! touch another project (it gets NOT_FOUND, never PERMISSION_DENIED, so it cannot even
//! learn that the other project exists).

mod common;

use cacheplane_testkit::json::{array_field, name_id, str_field, string_field};
use cacheplane_testkit::{Api, TestDb};
use cacheplane_testkit::{Fleet, GIB};
use common::checks::{expect_error, expect_invalid, expect_ok, raw_req};
use reqwest::Method;
use serde_json::{json, Value};

const A: &str = "/v1/projects/team-a/locations/local";
const B: &str = "/v1/projects/team-b/locations/local";

/// A request with `token` (not the admin token).
async fn call(
    api: &Api,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    api.req(method, path, Some(token), body).await
}

/// Creates a token (admin); returns (secret, id).
async fn new_token(api: &Api, body: Value) -> (String, String) {
    let t = expect_ok("create token", &api.post("/v1/tokens", body).await);
    let secret = t["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {t}"));
    let id = t["name"].as_str().and_then(|n| n.strip_prefix("tokens/"));
    (
        secret.to_string(),
        id.unwrap_or_else(|| panic!("bad name in {t}")).to_string(),
    )
}

fn basic() -> Value {
    json!({"tier": "BASIC", "memorySizeGb": 1})
}

/// Creates an instance with `token`; returns its operation's id.
async fn create_with(api: &Api, token: &str, parent: &str, id: &str) -> String {
    let path = format!("{parent}/instances?instanceId={id}");
    let op = expect_ok(
        &format!("create {id}"),
        &call(api, token, Method::POST, &path, Some(basic())).await,
    );
    assert!(op["error"].is_null(), "{op}");
    name_id(&op, "name")
}

async fn start() -> (TestDb, Api) {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    (db, api)
}

#[tokio::test]
async fn calls_without_a_valid_token_get_401() {
    let (_db, api) = start().await;
    let paths = [
        (Method::GET, "/v1/regions"),
        (Method::GET, "/v1/tiers"),
        (Method::GET, "/v1/projects/team-a/locations/local/instances"),
        (
            Method::POST,
            "/v1/projects/team-a/locations/local/instances?instanceId=x",
        ),
        (Method::GET, "/v1/projects/team-a/networks"),
        (Method::GET, "/v1/tokens"),
        (Method::POST, "/v1/tokens"),
        (Method::GET, "/v1/hosts"),
        (Method::PUT, "/v1/hosts/h1"),
        (Method::GET, "/v1/hosts/h1/config"),
    ];
    let admin = api.admin_token.clone();
    let headers: Vec<Vec<u8>> = vec![
        format!("Bearer cp_{}", "0".repeat(64)).into_bytes(),
        format!("Bearer {admin}x").into_bytes(),
        admin.clone().into_bytes(),
        format!("Basic {admin}").into_bytes(),
        format!("Token {admin}").into_bytes(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer    ".to_vec(),
        b"Bearer \xff\xfe".to_vec(),
    ];
    for (method, path) in paths {
        let got = raw_req(&api, method.clone(), path, None, "{}").await;
        expect_error(
            &format!("{method} {path} without a token"),
            &got,
            401,
            "UNAUTHENTICATED",
            None,
        );
        for h in &headers {
            let got = raw_req(&api, method.clone(), path, Some(h), "{}").await;
            let what = format!(
                "{method} {path} with Authorization {:?}",
                String::from_utf8_lossy(h)
            );
            expect_error(&what, &got, 401, "UNAUTHENTICATED", None);
        }
    }
    // None of it created anything.
    let got = expect_ok("list tokens", &api.get("/v1/tokens").await);
    assert_eq!(got["tokens"].as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(
        expect_ok("hosts", &api.get("/v1/hosts").await)["hosts"],
        json!([])
    );
}

#[tokio::test]
async fn authorization_scheme_is_case_insensitive() {
    // RFC 7235 §2.1 (and RFC 6750): the auth scheme is a case-insensitive token.
    let (_db, api) = start().await;
    for scheme in ["bearer", "BEARER"] {
        let header = format!("{scheme} {}", api.admin_token);
        let got = raw_req(
            &api,
            Method::GET,
            "/v1/regions",
            Some(header.as_bytes()),
            "",
        )
        .await;
        assert_eq!(got.0, 200, "scheme {scheme:?}: {}", got.1);
    }
}

#[tokio::test]
async fn admin_creates_tokens_whose_secrets_are_shown_once() {
    let (_db, api) = start().await;
    let t = expect_ok(
        "create",
        &api.post(
            "/v1/tokens",
            json!({"project": "team-a", "description": "ci"}),
        )
        .await,
    );
    let secret = string_field(&t, "token");
    assert!(secret.starts_with("cp_") && secret.len() >= 32, "{t}");
    assert_eq!(
        (&t["kind"], &t["project"], &t["description"]),
        (&json!("PROJECT"), &json!("team-a"), &json!("ci")),
        "{t}"
    );
    assert!(
        t["name"].as_str().is_some_and(|n| n.starts_with("tokens/")),
        "{t}"
    );
    let (host_secret, _) = new_token(&api, json!({"host": "h1"})).await;
    assert_ne!(secret, host_secret);

    let list = expect_ok("list", &api.get("/v1/tokens").await);
    let tokens = array_field(&list, "tokens").clone();
    assert_eq!(
        tokens.len(),
        3,
        "bootstrap, project and host tokens: {list}"
    );
    assert!(
        tokens.iter().all(|t| t.get("token").is_none()),
        "a secret is listed: {list}"
    );
    let text = list.to_string();
    assert!(
        !text.contains(&secret) && !text.contains(&host_secret),
        "{list}"
    );
    assert!(
        tokens
            .iter()
            .any(|x| x["name"] == t["name"] && x["project"] == "team-a"),
        "{list}"
    );
    // The secret works, for its project.
    let got = call(
        &api,
        &secret,
        Method::GET,
        "/v1/projects/team-a/networks",
        None,
    )
    .await;
    let nets = expect_ok("networks with the new token", &got);
    assert_eq!(
        nets["networks"][0]["name"], "projects/team-a/networks/default",
        "{nets}"
    );

    let bad = [
        (json!({}), "project"),
        (json!({"project": "team-a", "host": "h1"}), "project"),
        (json!({"project": "Team_A"}), "project"),
        (json!({"host": "H_1"}), "host"),
        (json!({"project": "team-a", "admin": true}), "admin"),
        (
            json!({"project": "team-a", "description": "x".repeat(257)}),
            "description",
        ),
    ];
    for (body, field) in bad {
        expect_invalid(
            &format!("create token {body}"),
            &api.post("/v1/tokens", body.clone()).await,
            field,
        );
    }
    let list = expect_ok("list", &api.get("/v1/tokens").await);
    assert_eq!(list["tokens"].as_array().map(Vec::len), Some(3), "{list}");
}

#[tokio::test]
async fn project_tokens_get_not_found_for_other_projects() {
    let (_db, api) = start().await;
    let _fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let (ta, _) = new_token(&api, json!({"project": "team-a"})).await;
    let (tb, _) = new_token(&api, json!({"project": "team-b"})).await;
    let op_a = create_with(&api, &ta, A, "cache-a").await;
    let op_b = create_with(&api, &tb, B, "cache-b").await;

    // Token A works in its own project.
    for path in [
        format!("{A}/instances"),
        format!("{A}/instances/cache-a"),
        format!("{A}/instances/cache-a/authString"),
        format!("{A}/operations"),
        format!("{A}/operations/{op_a}"),
        "/v1/projects/team-a/networks".into(),
        "/v1/projects/team-a/networks/default".into(),
        "/v1/regions".into(),
    ] {
        expect_ok(
            &format!("token A: GET {path}"),
            &call(&api, &ta, Method::GET, &path, None).await,
        );
    }
    // …and gets NOT_FOUND for everything in project B, existing or not.
    let lbl = json!({"labels": {"x": "y"}});
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{B}/instances"), None),
        (
            Method::GET,
            "/v1/projects/team-b/locations/-/instances".into(),
            None,
        ),
        (Method::GET, format!("{B}/instances/cache-b"), None),
        (Method::GET, format!("{B}/instances/nothing"), None),
        (
            Method::GET,
            format!("{B}/instances/cache-b/authString"),
            None,
        ),
        (
            Method::PATCH,
            format!("{B}/instances/cache-b?updateMask=labels"),
            Some(lbl),
        ),
        (Method::DELETE, format!("{B}/instances/cache-b"), None),
        (
            Method::POST,
            format!("{B}/instances/cache-b/failover"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("{B}/instances?instanceId=intruder"),
            Some(basic()),
        ),
        (Method::GET, format!("{B}/operations"), None),
        (
            Method::GET,
            "/v1/projects/team-b/locations/-/operations".into(),
            None,
        ),
        (Method::GET, format!("{B}/operations/{op_b}"), None),
        (
            Method::POST,
            format!("{B}/operations/{op_b}/wait?timeout=1s"),
            None,
        ),
        (Method::GET, format!("{A}/operations/{op_b}"), None),
        (Method::GET, "/v1/projects/team-b/networks".into(), None),
        (
            Method::GET,
            "/v1/projects/team-b/networks/default".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/projects/team-b/networks?networkId=n".into(),
            Some(json!({"ipRange": "10.9.0.0/16"})),
        ),
        (
            Method::DELETE,
            "/v1/projects/team-b/networks/default".into(),
            None,
        ),
        (Method::GET, "/v1/projects/team-c/networks".into(), None),
    ];
    for (method, path, body) in cases {
        let got = call(&api, &ta, method.clone(), &path, body).await;
        expect_error(
            &format!("token A: {method} {path}"),
            &got,
            404,
            "NOT_FOUND",
            None,
        );
    }
    // Project B is untouched.
    let b = expect_ok(
        "admin get cache-b",
        &api.get(&format!("{B}/instances/cache-b")).await,
    );
    assert_eq!(b["labels"], json!({}), "{b}");
    assert_eq!(b["state"], "CREATING", "{b}");
    expect_ok(
        "admin get b's default",
        &api.get("/v1/projects/team-b/networks/default").await,
    );
    let got = expect_ok(
        "B's instances",
        &call(&api, &tb, Method::GET, &format!("{B}/instances"), None).await,
    );
    assert_eq!(got["instances"].as_array().map(Vec::len), Some(1), "{got}");
}

#[tokio::test]
async fn project_and_host_tokens_cannot_use_admin_methods() {
    let (_db, api) = start().await;
    let (ta, _) = new_token(&api, json!({"project": "team-a"})).await;
    let (th, _) = new_token(&api, json!({"host": "h1"})).await;
    let host = json!({"zone": "local-a", "address": "127.0.0.1", "memoryBytes": GIB, "engines": ["REDIS_7_0"]});
    let beat = json!({"appliedGeneration": 0});
    let admin_only: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/tokens", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"project": "team-a"})),
        ),
        (
            Method::DELETE,
            "/v1/tokens/00000000-0000-0000-0000-000000000000",
            None,
        ),
        (Method::GET, "/v1/hosts", None),
        (Method::GET, "/v1/hosts/h2", None),
        (Method::PUT, "/v1/hosts/h2", Some(host.clone())),
        (Method::GET, "/v1/hosts/h2/config", None),
        (Method::POST, "/v1/hosts/h2/heartbeat", Some(beat.clone())),
    ];
    for (method, path, body) in &admin_only {
        for (who, token) in [("project", &ta), ("host h1", &th)] {
            let got = call(&api, token, method.clone(), path, body.clone()).await;
            expect_error(
                &format!("{who} token: {method} {path}"),
                &got,
                403,
                "PERMISSION_DENIED",
                None,
            );
        }
    }
    // A project token may not act as a host either.
    let got = call(&api, &ta, Method::PUT, "/v1/hosts/h1", Some(host.clone())).await;
    expect_error(
        "project token: PUT /v1/hosts/h1",
        &got,
        403,
        "PERMISSION_DENIED",
        None,
    );
    // The host token speaks its own host's protocol…
    let reg = expect_ok(
        "host token registers h1",
        &call(&api, &th, Method::PUT, "/v1/hosts/h1", Some(host)).await,
    );
    assert_eq!(reg["name"], "hosts/h1", "{reg}");
    for (method, path, body) in [
        (Method::GET, "/v1/hosts/h1", None),
        (Method::GET, "/v1/hosts/h1/config", None),
        (Method::POST, "/v1/hosts/h1/heartbeat", Some(beat)),
    ] {
        expect_ok(
            &format!("host token: {method} {path}"),
            &call(&api, &th, method.clone(), path, body).await,
        );
    }
    // …but sees no project.
    let got = call(&api, &th, Method::GET, &format!("{A}/instances"), None).await;
    expect_error("host token: list instances", &got, 404, "NOT_FOUND", None);
    let hosts = expect_ok("hosts", &api.get("/v1/hosts").await);
    assert_eq!(
        hosts["hosts"].as_array().map(Vec::len),
        Some(1),
        "only h1 registered: {hosts}"
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused_and_the_bootstrap_token_stays() {
    let (_db, api) = start().await;
    let (ta, id_a) = new_token(&api, json!({"project": "team-a"})).await;
    let (th, id_h) = new_token(&api, json!({"host": "h1"})).await;
    let nets = "/v1/projects/team-a/networks";
    expect_ok(
        "before revoking",
        &call(&api, &ta, Method::GET, nets, None).await,
    );
    for id in [&id_a, &id_h] {
        expect_ok("revoke", &api.delete(&format!("/v1/tokens/{id}")).await);
        let again = api.delete(&format!("/v1/tokens/{id}")).await;
        expect_error("revoke twice", &again, 404, "NOT_FOUND", None);
    }
    let got = call(&api, &ta, Method::GET, nets, None).await;
    expect_error("revoked project token", &got, 401, "UNAUTHENTICATED", None);
    let host = json!({"zone": "local-a", "address": "127.0.0.1", "memoryBytes": GIB, "engines": ["REDIS_7_0"]});
    let got = call(&api, &th, Method::PUT, "/v1/hosts/h1", Some(host)).await;
    expect_error("revoked host token", &got, 401, "UNAUTHENTICATED", None);
    for id in ["not-a-uuid".to_string(), uuid::Uuid::new_v4().to_string()] {
        let got = api.delete(&format!("/v1/tokens/{id}")).await;
        expect_error(&format!("revoke {id}"), &got, 404, "NOT_FOUND", None);
    }

    let list = expect_ok("list", &api.get("/v1/tokens").await);
    let tokens = array_field(&list, "tokens").clone();
    assert_eq!(tokens.len(), 1, "revoked tokens are not listed: {list}");
    assert_eq!(tokens[0]["kind"], "ADMIN", "{list}");
    let boot = str_field(&tokens[0], "name")
        .strip_prefix("tokens/")
        .unwrap_or_else(|| panic!("not a token name: {}", tokens[0]));
    let got = api.delete(&format!("/v1/tokens/{boot}")).await;
    expect_error("revoke the bootstrap token", &got, 404, "NOT_FOUND", None);
    let list = expect_ok("admin still works", &api.get("/v1/tokens").await);
    assert_eq!(list["tokens"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn lists_never_show_another_projects_resources() {
    let (_db, api) = start().await;
    let _fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let (ta, _) = new_token(&api, json!({"project": "team-a"})).await;
    let (tb, _) = new_token(&api, json!({"project": "team-b"})).await;
    for i in 0..3 {
        create_with(&api, &ta, A, &format!("mine-{i}")).await;
        create_with(&api, &tb, B, &format!("theirs-{i}")).await;
    }
    let lists = [
        format!("{A}/instances"),
        "/v1/projects/team-a/locations/-/instances".into(),
        format!("{A}/instances?filter=state%3DCREATING"),
        format!("{A}/operations"),
        "/v1/projects/team-a/locations/-/operations".into(),
        "/v1/projects/team-a/networks".into(),
    ];
    for (who, token) in [("token A", &ta), ("admin", &api.admin_token)] {
        for list in &lists {
            // Page through with a small page size: no page may show project B.
            let mut seen = 0;
            let mut token_param = String::new();
            loop {
                // Networks come in one page (a project has few); the rest page.
                let path = if list.ends_with("/networks") {
                    list.clone()
                } else {
                    let sep = if list.contains('?') { '&' } else { '?' };
                    format!("{list}{sep}pageSize=2{token_param}")
                };
                let page = expect_ok(
                    &format!("{who}: {path}"),
                    &call(&api, token, Method::GET, &path, None).await,
                );
                let text = page.to_string();
                assert!(
                    !text.contains("team-b") && !text.contains("theirs"),
                    "{who}: {path} shows project B: {page}"
                );
                seen += text.matches("\"name\":\"projects/team-a/").count();
                match page["nextPageToken"].as_str() {
                    Some(t) => token_param = format!("&pageToken={t}"),
                    None => break,
                }
            }
            assert!(seen >= 1, "{who}: {list} shows nothing of project A");
        }
    }
}
