//! How an answer is rendered, for the length of one serialization: the API sets it from
//! the request (`$alt`, and whether a Google client library asks) around the one call that
//! turns its answer into JSON; everything else serializes with the default.

use std::cell::Cell;

/// The form of an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoding {
    /// The enums Memorystore has (`crate::proto_enum`) as their numbers in
    /// `google.cloud.redis.v1` instead of their names.
    pub enum_numbers: bool,
    /// Only the fields of Google's messages: the fields Cacheplane adds (marked with
    /// [`cacheplane_only`]) are left out. Google's client libraries parse some answers
    /// (operations, through `google.api_core`'s operations client) strictly: a field
    /// their proto lacks is an error there.
    pub google_fields_only: bool,
}

thread_local! {
    static CURRENT: Cell<Encoding> = const {
        Cell::new(Encoding { enum_numbers: false, google_fields_only: false })
    };
}

/// Runs `f` (a serialization) with `encoding`. The setting is this thread's and ends with
/// `f`, even if `f` panics.
pub fn with_encoding<R>(encoding: Encoding, f: impl FnOnce() -> R) -> R {
    struct Restore(Encoding);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(encoding)));
    f()
}

/// The encoding in force.
pub fn current() -> Encoding {
    CURRENT.with(Cell::get)
}

/// For `#[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]` on a field
/// that Google's message lacks: left out when only Google's fields are asked for.
pub fn cacheplane_only<T: ?Sized>(_: &T) -> bool {
    current().google_fields_only
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldViolation, OperationMetadata, OperationVerb, Status};
    use serde_json::json;

    const GOOGLE: Encoding = Encoding {
        enum_numbers: true,
        google_fields_only: true,
    };

    #[test]
    fn google_clients_get_only_the_fields_of_googles_messages() {
        let status = Status {
            code: 400,
            status: "INVALID_ARGUMENT".into(),
            message: "tier: unknown".into(),
            details: vec![FieldViolation {
                field: "tier".into(),
                description: "unknown".into(),
            }],
        };
        let strict = with_encoding(GOOGLE, || serde_json::to_value(&status).unwrap());
        assert_eq!(
            strict,
            json!({"code": 400, "message": "tier: unknown", "details": [{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "tier", "description": "unknown"}],
            }]})
        );
        let full = serde_json::to_value(&status).unwrap();
        assert_eq!(full["status"], "INVALID_ARGUMENT");
        assert_eq!(full["details"][0]["field"], "tier");

        let now = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let meta =
            OperationMetadata::new(OperationVerb::Create, "t".into(), now, None, 5, "s".into());
        let strict = with_encoding(GOOGLE, || serde_json::to_value(&meta).unwrap());
        assert_eq!(
            strict,
            json!({
                "@type": "type.googleapis.com/google.cloud.redis.v1.OperationMetadata",
                "verb": "create", "target": "t", "createTime": "1970-01-01T00:00:00Z",
                "statusDetail": "s", "cancelRequested": false, "apiVersion": "v1",
            })
        );
        assert_eq!(serde_json::to_value(&meta).unwrap()["progress"], 5);
    }

    #[test]
    fn the_setting_lasts_as_long_as_the_closure_even_if_it_panics() {
        let google = GOOGLE;
        assert!(with_encoding(google, || cacheplane_only(&1)));
        assert_eq!(current(), Encoding::default());
        let caught = std::panic::catch_unwind(|| with_encoding(google, || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(current(), Encoding::default());
    }
}
