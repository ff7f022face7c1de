//! Assertions on API answers: the error shape (docs/architecture.md#error-shape) and its field, and requests
//! with raw (possibly malformed) bodies or headers.

use reqwest::Method;
use serde_json::Value;

use cacheplane_testkit::Api;

/// Asserts an error answer: HTTP `code`, the error shape (`error.code`, `error.status`, a
/// message) and, if given, `error.details[0].field`.
#[track_caller]
pub fn expect_error(what: &str, got: &(u16, Value), code: u16, status: &str, field: Option<&str>) {
    let (http, body) = got;
    let e = &body["error"];
    assert_eq!(*http, code, "{what}: HTTP status; body {body}");
    assert_eq!(e["code"], code, "{what}: error.code; body {body}");
    assert_eq!(e["status"], status, "{what}: error.status; body {body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error.message; body {body}"
    );
    if let Some(field) = field {
        assert_eq!(
            e["details"][0]["field"], field,
            "{what}: error.details[0].field; body {body}"
        );
    }
}

/// Asserts a 400 INVALID_ARGUMENT naming `field`.
#[track_caller]
pub fn expect_invalid(what: &str, got: &(u16, Value), field: &str) {
    expect_error(what, got, 400, "INVALID_ARGUMENT", Some(field));
}

/// Asserts a valid value the stored state refuses: 409 FAILED_PRECONDITION whose
/// message starts with the field (a range in use, outside the network's pool, …).
#[track_caller]
pub fn expect_conflict(what: &str, got: &(u16, Value), field: &str) {
    expect_error(what, got, 409, "FAILED_PRECONDITION", None);
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{field}: ")),
        "{what}: the message names {field}: {}",
        got.1
    );
}

/// Asserts a 200 or 204 and returns the body.
#[track_caller]
pub fn expect_ok(what: &str, got: &(u16, Value)) -> Value {
    assert!(matches!(got.0, 200 | 204), "{what}: {} {}", got.0, got.1);
    got.1.clone()
}

/// `base` with the keys of `over` set; a null in `over` removes the key.
pub fn merge(mut base: Value, over: Value) -> Value {
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), over) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

/// One request with a raw body and an optional raw `Authorization` header value.
pub async fn raw_req(
    api: &Api,
    method: Method,
    path: &str,
    authorization: Option<&[u8]>,
    body: &'static str,
) -> (u16, Value) {
    api.raw(method, path, authorization, body).await
}
