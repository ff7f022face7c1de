//! How an answer is encoded (`cacheplane_types::encoding`).
//!
//! - `$alt`, on every route: `json` (or none) answers enums by name, as always;
//!   `json;enum-encoding=int`, which Google's client libraries send, answers the enums
//!   Memorystore has (tier, state, modes) by their numbers in `google.cloud.redis.v1`
//!   (`cacheplane_types::proto_enum`). Requests may carry either form whatever `$alt` says.
//! - A request from a Google client library (it carries [`GOOGLE_CLIENT_HEADER`], as all
//!   of them do) is answered with enums as numbers and only the fields of Google's
//!   messages: `google.api_core`'s operations client polls operations without `$alt` and
//!   parses them strictly, so a field Google's proto lacks would be an error there.

use axum::extract::{Query, Request};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cacheplane_types::encoding::{with_encoding, Encoding};
use serde::Serialize;

use crate::error::ApiError;
use crate::http::extract::Json;

/// The query parameter.
pub const PARAM: &str = "$alt";

/// The header Google's client libraries send on every call (`gl-python/… gax/…`).
pub const GOOGLE_CLIENT_HEADER: &str = "x-goog-api-client";

/// The values `$alt` takes: (value, answer enums as numbers).
pub const VALUES: &[(&str, bool)] = &[
    ("json", false),
    ("json;enum-encoding=string", false),
    ("json;enum-encoding=int", true),
];

tokio::task_local! {
    /// How the request being answered is to be answered.
    static ENCODING: Encoding;
}

/// Whether `uri` asks for enums as numbers; an unknown `$alt` is INVALID_ARGUMENT on it.
/// A query that does not parse counts as no `$alt` (the handler's own query extractor
/// reports it).
pub fn enum_numbers(uri: &Uri) -> Result<bool, ApiError> {
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return Ok(false);
    };
    let mut numbers = false;
    for (_, value) in pairs.iter().filter(|(k, _)| k == PARAM) {
        numbers = VALUES
            .iter()
            .find(|(v, _)| v == value)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                let known: Vec<&str> = VALUES.iter().map(|(v, _)| *v).collect();
                ApiError::field(
                    PARAM,
                    format!("'{value}' is not served; one of: {}", known.join(", ")),
                )
            })?;
    }
    Ok(numbers)
}

/// Whether the request being answered comes from a Google client library.
pub fn google_client() -> bool {
    ENCODING.try_with(|e| e.google_fields_only).unwrap_or(false)
}

/// How to answer a request with this URI and headers.
pub fn encoding(uri: &Uri, headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let google = headers.contains_key(GOOGLE_CLIENT_HEADER);
    Ok(Encoding {
        enum_numbers: enum_numbers(uri)? || google,
        google_fields_only: google,
    })
}

/// Middleware: reads `$alt` and the client's header and answers the request under them.
pub async fn layer(req: Request, next: Next) -> Response {
    match encoding(req.uri(), req.headers()) {
        Ok(encoding) => ENCODING.scope(encoding, next.run(req)).await,
        Err(e) => e.into_response(),
    }
}

/// A JSON answer, encoded as the request asks (see the module).
impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let encoding = ENCODING.try_with(|e| *e).unwrap_or_default();
        match with_encoding(encoding, || serde_json::to_vec(&self.0)) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => {
                ApiError::Internal(anyhow::anyhow!("rendering the answer: {e}")).into_response()
            }
        }
    }
}

/// Documents `$alt` on every `/v1` method.
pub struct Documented;

impl utoipa::Modify for Documented {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let values: Vec<&str> = VALUES.iter().map(|(v, _)| *v).collect();
        let param = ParameterBuilder::new()
            .name(PARAM)
            .parameter_in(ParameterIn::Query)
            .description(Some(
                "Answer encoding: `json` (the default) gives enums by name, \
                 `json;enum-encoding=int` by their google.cloud.redis.v1 numbers \
                 (docs/google-compat.md).",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(values)),
            ))
            .build();
        for op in super::v1_operations(openapi) {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(param.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(uri: &str) -> Result<bool, String> {
        enum_numbers(&uri.parse().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn alt_picks_the_encoding() {
        assert_eq!(numbers("/v1/x"), Ok(false));
        assert_eq!(numbers("/v1/x?%24alt=json"), Ok(false));
        assert_eq!(
            numbers("/v1/x?instanceId=a&%24alt=json%3Benum-encoding%3Dint"),
            Ok(true)
        );
        assert_eq!(numbers("/v1/x?$alt=json;enum-encoding=int"), Ok(true));
        assert_eq!(numbers("/v1/x?$alt=json;enum-encoding=string"), Ok(false));
    }

    #[test]
    fn google_clients_get_numbers_and_google_fields_only() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/v1/projects/p/locations/r/operations/o".parse().unwrap();
        assert_eq!(encoding(&uri, &headers).unwrap(), Encoding::default());
        headers.insert(
            GOOGLE_CLIENT_HEADER,
            HeaderValue::from_static("gl-python/3.11.7 gax/2.44.0"),
        );
        let google = encoding(&uri, &headers).unwrap();
        assert!(google.enum_numbers && google.google_fields_only);
    }

    #[test]
    fn other_encodings_are_refused_naming_the_parameter() {
        let err = numbers("/v1/x?%24alt=proto").unwrap_err();
        assert!(err.starts_with("$alt: 'proto' is not served"), "{err}");
        let e = enum_numbers(&"/v1/x?$alt=media".parse().unwrap()).unwrap_err();
        match e {
            ApiError::InvalidArgument { details, .. } => assert_eq!(details[0].field, "$alt"),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
}
