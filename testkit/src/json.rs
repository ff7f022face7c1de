//! Reading fields of JSON answers: a missing or mistyped field fails with a message
//! naming it and showing the document, where `as_str().unwrap_or_default()` would carry
//! on with an empty value and fail somewhere else, or not at all.
//!
//! A path is the keys separated by dots, array positions as numbers:
//! `"error.details.0.field"`.

use serde_json::Value;

/// The value at `path`, which must be present and not null.
#[track_caller]
pub fn field<'a>(doc: &'a Value, path: &str) -> &'a Value {
    let mut at = doc;
    for key in path.split('.') {
        let next = match (at, key.parse::<usize>()) {
            (Value::Array(items), Ok(i)) => items.get(i),
            (Value::Object(map), _) => map.get(key),
            _ => None,
        };
        at = match next {
            Some(v) if !v.is_null() => v,
            _ => panic!("no field `{path}` (at `{key}`) in {doc}"),
        };
    }
    at
}

/// The value at `path` read by `get`, which answers `None` when it is not `kind`.
#[track_caller]
fn typed<'a, T>(
    doc: &'a Value,
    path: &str,
    kind: &str,
    get: impl FnOnce(&'a Value) -> Option<T>,
) -> T {
    let v = field(doc, path);
    get(v).unwrap_or_else(|| panic!("field `{path}` is not {kind} ({v}) in {doc}"))
}

/// The string at `path`.
#[track_caller]
pub fn str_field<'a>(doc: &'a Value, path: &str) -> &'a str {
    typed(doc, path, "a string", Value::as_str)
}

/// The string at `path`, owned.
#[track_caller]
pub fn string_field(doc: &Value, path: &str) -> String {
    str_field(doc, path).to_string()
}

/// The integer at `path`.
#[track_caller]
pub fn i64_field(doc: &Value, path: &str) -> i64 {
    typed(doc, path, "an integer", Value::as_i64)
}

/// The port number at `path`.
#[track_caller]
pub fn port_field(doc: &Value, path: &str) -> u16 {
    typed(doc, path, "a port", |v| {
        v.as_u64().and_then(|p| u16::try_from(p).ok())
    })
}

/// The array at `path`.
#[track_caller]
pub fn array_field<'a>(doc: &'a Value, path: &str) -> &'a Vec<Value> {
    typed(doc, path, "an array", Value::as_array)
}

/// The last segment of the resource name at `path` (`…/instances/c1` → `c1`).
#[track_caller]
pub fn name_id(doc: &Value, path: &str) -> String {
    let name = str_field(doc, path);
    name.rsplit('/').next().unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_nested_fields() {
        let doc = json!({"error": {"details": [{"field": "tier"}]}, "port": 6379});
        assert_eq!(str_field(&doc, "error.details.0.field"), "tier");
        assert_eq!(port_field(&doc, "port"), 6379);
    }

    #[test]
    fn a_missing_field_is_named_with_the_document() {
        let doc = json!({"name": null});
        let e = std::panic::catch_unwind(|| str_field(&doc, "name").len()).expect_err("panics");
        let msg = e.downcast_ref::<String>().expect("a message");
        assert!(
            msg.contains("`name`") && msg.contains("{\"name\":null}"),
            "{msg}"
        );
    }
}
