//! The error shape: today's `details[].field` and a google.rpc.Status at once.

use serde_json::json;

use super::{ErrorBody, FieldViolation, Status};

fn invalid() -> ErrorBody {
    ErrorBody {
        error: Status {
            code: 400,
            status: "INVALID_ARGUMENT".into(),
            message: "tier: unknown tier 'GOLD'".into(),
            details: vec![FieldViolation {
                field: "tier".into(),
                description: "unknown tier 'GOLD'".into(),
            }],
        },
    }
}

#[test]
fn field_violations_are_bad_requests_that_keep_their_field() {
    let v = serde_json::to_value(invalid()).unwrap();
    assert_eq!(
        v,
        json!({"error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": "tier: unknown tier 'GOLD'",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field": "tier",
                "description": "unknown tier 'GOLD'",
                "fieldViolations": [{"field": "tier", "description": "unknown tier 'GOLD'"}],
            }],
        }})
    );
}

#[test]
fn both_shapes_read_back() {
    let now: ErrorBody = serde_json::from_value(serde_json::to_value(invalid()).unwrap()).unwrap();
    assert_eq!(now, invalid());
    let before: ErrorBody = serde_json::from_value(json!({"error": {
        "code": 400, "status": "INVALID_ARGUMENT", "message": "tier: unknown tier 'GOLD'",
        "details": [{"field": "tier", "description": "unknown tier 'GOLD'"}],
    }}))
    .unwrap();
    assert_eq!(before, invalid());
}

#[test]
fn errors_without_fields_have_no_details() {
    let mut e = invalid();
    e.error.details.clear();
    let v = serde_json::to_value(e).unwrap();
    assert!(v["error"].get("details").is_none(), "{v}");
}
