//! The API's errors as Terraform diagnostics: each field the API names (`memorySizeGb`,
//! `redisConfigs.maxmemory-policy`) becomes an error on the resource's attribute
//! (`memory_size_gb`, `redis_configs["maxmemory-policy"]`), so Terraform shows the line
//! of the configuration at fault.

use cacheplane_types::Status;
use tf_provider::{AttributePath, Diagnostics};

use crate::client::ApiError;
use crate::operations::WaitError;

/// `memorySizeGb` → `memory_size_gb`.
pub fn snake_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The attribute an API field names, when it is one of `attributes` (the resource's
/// attribute names): `redisConfigs.KEY` is the key `KEY` of `redis_configs`.
pub fn field_path(field: &str, attributes: &[&str]) -> Option<(String, AttributePath)> {
    let (head, key) = match field.split_once('.') {
        Some((head, key)) => (head, Some(key)),
        None => (field, None),
    };
    let attr = snake_case(head);
    let shown = match key {
        Some(k) => format!("{attr}[\"{k}\"]"),
        None => attr.clone(),
    };
    if !attributes.contains(&attr.as_str()) {
        return None;
    }
    let mut path = AttributePath::new(attr);
    if let Some(k) = key {
        path = path.key(k.to_string());
    }
    Some((shown, path))
}

/// Adds the errors of `status` to `diags`: one per field at fault, on that attribute when
/// the resource has it, else one for the whole call. `what` says what was being done
/// (`creating instance projects/p/…/instances/x`).
pub fn status(diags: &mut Diagnostics, what: &str, status: &Status, attributes: &[&str]) {
    for d in &status.details {
        match field_path(&d.field, attributes) {
            Some((shown, path)) => {
                diags.error(
                    format!("{shown}: {}", d.description),
                    format!(
                        "{what}: {} {}: {}",
                        status.code, status.status, status.message
                    ),
                    path,
                );
            }
            None => diags.root_error(
                format!("{}: {}", snake_case(&d.field), d.description),
                format!(
                    "{what}: {} {}: {}",
                    status.code, status.status, status.message
                ),
            ),
        }
    }
    if status.details.is_empty() {
        let hint = if status.code == 401 {
            " (check the provider's `token` or CACHEPLANE_TOKEN)"
        } else {
            ""
        };
        diags.root_error(
            format!("{} {}: {}", status.code, status.status, status.message),
            format!("{what}{hint}"),
        );
    }
}

/// Adds a failed call to `diags`.
pub fn api(diags: &mut Diagnostics, what: &str, err: &ApiError, attributes: &[&str]) {
    match err {
        ApiError::Status(s) => status(diags, what, s, attributes),
        ApiError::Transport(m) => diags.root_error(format!("{what}: {m}"), ""),
    }
}

/// Adds a failed operation wait to `diags`.
pub fn wait(diags: &mut Diagnostics, what: &str, err: &WaitError, attributes: &[&str]) {
    match err {
        WaitError::Failed(s) => status(diags, what, s, attributes),
        WaitError::Api(e) => api(diags, what, e, attributes),
        WaitError::Timeout(m) => diags.root_error(format!("{what}: timed out"), m.clone()),
    }
}

/// The value of a call; `None`, with the call's error added to `diags`, when it failed.
pub fn ok<T>(
    diags: &mut Diagnostics,
    result: Result<T, ApiError>,
    what: &str,
    attributes: &[&str],
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            api(diags, what, &e, attributes);
            None
        }
    }
}

/// A resource that must exist: `None`, with the error `missing` added to `diags`, when the
/// API has no such resource, or with the call's error when it failed.
pub fn found<T>(
    diags: &mut Diagnostics,
    result: Result<Option<T>, ApiError>,
    what: &str,
    missing: &str,
    attributes: &[&str],
) -> Option<T> {
    let found = ok(diags, result, what, attributes)?;
    if found.is_none() {
        diags.root_error_short(missing.to_string());
    }
    found
}

#[cfg(test)]
mod tests {
    use cacheplane_types::FieldViolation;
    use tf_provider::AttributePathStep;

    use super::*;

    #[test]
    fn api_fields_name_attributes() {
        assert_eq!(snake_case("memorySizeGb"), "memory_size_gb");
        let (shown, path) =
            field_path("redisConfigs.maxmemory-policy", &["redis_configs"]).unwrap();
        assert_eq!(shown, "redis_configs[\"maxmemory-policy\"]");
        assert_eq!(
            path.steps,
            vec![
                AttributePathStep::Attribute("redis_configs".into()),
                AttributePathStep::Key("maxmemory-policy".into())
            ]
        );
        assert!(field_path("updateMask", &["redis_configs"]).is_none());
    }

    #[test]
    fn each_field_at_fault_is_an_error_on_its_attribute() {
        let mut d = Diagnostics::default();
        let s = Status {
            code: 400,
            status: "INVALID_ARGUMENT".into(),
            message: "memorySizeGb: too big".into(),
            details: vec![FieldViolation {
                field: "memorySizeGb".into(),
                description: "must be from 1 to 300, not 500".into(),
            }],
        };
        status(&mut d, "creating instance x", &s, &["memory_size_gb"]);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(
            d.errors[0].summary,
            "memory_size_gb: must be from 1 to 300, not 500"
        );
        assert_eq!(d.errors[0].attribute, AttributePath::new("memory_size_gb"));
    }

    #[test]
    fn a_missing_resource_is_one_error_and_a_failed_call_names_what_was_done() {
        let mut d = Diagnostics::default();
        let gone: Result<Option<i32>, ApiError> = Ok(None);
        assert_eq!(
            found(&mut d, gone, "reading x", "x does not exist", &[]),
            None
        );
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].summary, "x does not exist");
        assert_eq!(
            found(&mut d, Ok(Some(3)), "reading x", "gone", &[]),
            Some(3)
        );
        let failed: Result<i32, ApiError> = Err(ApiError::Transport("refused".into()));
        assert_eq!(ok(&mut d, failed, "reading x", &[]), None);
        assert_eq!(d.errors[1].summary, "reading x: refused");
    }
}
