//! `updateMask`: which fields of an instance a patch changes.

use crate::error::{ApiError, ApiResult};

/// Fields `updateMask` may name.
pub const UPDATABLE: &[&str] = &[
    "displayName",
    "labels",
    "memorySizeGb",
    "replicaCount",
    "redisConfigs",
    "readReplicasMode",
    "secondaryIpRange",
];

/// Fields set at create only: naming one in a patch is INVALID_ARGUMENT on that field.
pub const CREATE_ONLY: &[&str] = &["transitEncryptionMode"];

/// The refusal of a patch of `field`, set at create only.
pub fn create_only(field: &str) -> ApiError {
    ApiError::field(
        field,
        "is set at create only: create a new instance to change it",
    )
}

/// A field mask path as this API names fields: `memory_size_gb` (the proto's name, which
/// Google's tools put in masks) is `memorySizeGb`.
fn camel_case(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        match c {
            '_' if !out.is_empty() => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Parses an `updateMask` into its fields (camelCase, or the proto's snake_case names),
/// each one of `updatable`; a field of `create_only` is refused as set at create only.
pub fn parse_fields(
    raw: Option<&str>,
    updatable: &[&str],
    create_only_fields: &[&str],
) -> ApiResult<Vec<String>> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::field(
                "updateMask",
                format!(
                    "is required: a comma-separated list of {}",
                    updatable.join(", ")
                ),
            )
        })?;
    let mut fields: Vec<String> = Vec::new();
    for f in raw.split(',').map(str::trim).map(camel_case) {
        let f = f.as_str();
        if let Some(field) = create_only_fields.iter().find(|c| **c == f) {
            return Err(create_only(field));
        }
        if !updatable.contains(&f) {
            return Err(ApiError::field(
                "updateMask",
                format!(
                    "'{f}' cannot be updated; updatable: {}",
                    updatable.join(", ")
                ),
            ));
        }
        if !fields.iter().any(|x| x == f) {
            fields.push(f.to_string());
        }
    }
    Ok(fields)
}

/// Parses an instance patch's `updateMask` into its fields (camelCase, or the proto's
/// snake_case names).
pub fn parse_mask(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let fields = parse_fields(raw, UPDATABLE, CREATE_ONLY)?;
    let rr = fields.iter().any(|f| f == "readReplicasMode");
    if rr
        && fields
            .iter()
            .any(|f| f != "readReplicasMode" && f != "secondaryIpRange")
    {
        return Err(ApiError::field(
            "updateMask",
            "readReplicasMode must be changed on its own (with secondaryIpRange only)",
        ));
    }
    if !rr && fields.iter().any(|f| f == "secondaryIpRange") {
        return Err(ApiError::field(
            "updateMask",
            "secondaryIpRange goes with readReplicasMode",
        ));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_names_are_camel_cased() {
        assert_eq!(camel_case("memory_size_gb"), "memorySizeGb");
        assert_eq!(camel_case("displayName"), "displayName");
        assert_eq!(
            parse_mask(Some("memory_size_gb,labels,display_name,labels")).unwrap(),
            ["memorySizeGb", "labels", "displayName"]
        );
        assert!(parse_mask(Some("transit_encryption_mode")).is_err());
    }
}
