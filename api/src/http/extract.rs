//! Request extractors whose rejections use the API's error shape and name the field.
//! [`Json`] is also the JSON answer (rendered under `$alt`, see `super::alt`).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. An empty body reads as `{}`, so optional bodies need no special case and
/// a missing required field is named like any other. Errors name the field at fault.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::field("body", e.body_text()))?;
        parse_body(&bytes).map(Json)
    }
}

/// Parses a request body as [`Json`] does: an empty body reads as `{}`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json(if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    })
}

/// Parses JSON, naming the path of the first bad field in the error. Strings may not
/// hold NUL characters (Postgres text cannot store them).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::field(
            "body",
            format!("is not valid JSON: {}", without_position(&e)),
        )
    })?;
    if holds_nul(&value) {
        return Err(ApiError::field(
            "body",
            "strings may not contain NUL characters (\\u0000)",
        ));
    }
    integral_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = without_position(e.inner());
        let field = if path == "." || path.is_empty() {
            backticked(&msg).unwrap_or_else(|| "body".to_string())
        } else {
            path
        };
        ApiError::field(field, msg)
    })
}

/// Whether a string or a key anywhere in `value` holds NUL.
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// serde_json's message without its " at line 1 column 5" suffix.
fn without_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// Writes every whole number written with a fraction or exponent (`2.0`, `1e3`) as an
/// integer, as JSON Schema counts it one: integer fields take it.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Within i64 (2^63 is not), and whole.
            const I64: std::ops::Range<f64> = -9.223_372_036_854_776e18..9.223_372_036_854_776e18;
            if f.fract() == 0.0 && I64.contains(&f) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// The first name in backticks, e.g. the field of "missing field `tier`".
fn backticked(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(msg[start..start + len].to_string())
}

/// Query parameters; errors name the parameter.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        let text = e.body_text();
        let field = backticked(&text).unwrap_or_else(|| "query".to_string());
        ApiError::field(field, text)
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::field("path", e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheplane_types::CreateInstanceRequest;

    fn field_of(body: &str) -> String {
        match parse_json::<CreateInstanceRequest>(body.as_bytes()) {
            Err(ApiError::InvalidArgument { details, .. }) => details[0].field.clone(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"memorySizeGb": "x"}"#), "memorySizeGb");
        assert_eq!(field_of(r#"{"tier": "GOLD"}"#), "tier");
        assert_eq!(field_of(r#"{"nope": 1}"#), "nope");
        assert_eq!(field_of(r#"{"labels": {"a": 1}}"#), "labels.a");
        assert_eq!(field_of(r#"{"#), "body");
        assert_eq!(field_of(r#"[]"#), "body");
        assert_eq!(field_of(r#"{"displayName": "a\u0000b"}"#), "body");
    }

    #[test]
    fn whole_numbers_with_a_fraction_are_integers() {
        let req: CreateInstanceRequest =
            parse_json(br#"{"tier": "BASIC", "memorySizeGb": 2.0, "replicaCount": 0e0}"#)
                .expect("2.0 is a whole number");
        assert_eq!(req.memory_size_gb, 2);
        assert_eq!(
            field_of(r#"{"tier": "BASIC", "memorySizeGb": 2.5}"#),
            "memorySizeGb"
        );
    }
}
