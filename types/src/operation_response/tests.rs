//! `@type` on operation responses, and reading responses stored before they had it.

use serde_json::json;

use super::OperationResponse;
use crate::type_url;

#[test]
fn an_empty_response_is_google_protobuf_empty() {
    let v = serde_json::to_value(OperationResponse::Empty).unwrap();
    assert_eq!(
        v,
        json!({"@type": "type.googleapis.com/google.protobuf.Empty"})
    );
    let back: OperationResponse = serde_json::from_value(v).unwrap();
    assert_eq!(back, OperationResponse::Empty);
}

#[test]
fn unknown_types_and_non_objects_are_errors() {
    assert!(serde_json::from_value::<OperationResponse>(json!({"@type": "x"})).is_err());
    assert!(serde_json::from_value::<OperationResponse>(json!([])).is_err());
    assert!(serde_json::from_value::<OperationResponse>(json!({"name": "n"})).is_err());
    assert_eq!(
        type_url::INSTANCE,
        "type.googleapis.com/google.cloud.redis.v1.Instance"
    );
}
