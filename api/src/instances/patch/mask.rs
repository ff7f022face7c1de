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

/// The proto's snake_case name of a field (`memorySizeGb` is `memory_size_gb`), which
/// Google's tools put in masks.
fn snake_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The field `path` names in `fields`, by its camelCase or its snake_case name.
fn named<'a>(fields: &[&'a str], path: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|f| **f == path || snake_case(f) == path)
        .copied()
}

/// `updateMask`'s grammar as a regular expression, for the document: exactly what
/// [`parse_mask`] accepts. Fields by either name, separated by commas (spaces around
/// them allowed); `readReplicasMode` only with `secondaryIpRange`, which needs it.
pub fn pattern() -> String {
    let alternatives = |fields: &[&str]| {
        let names: Vec<String> = fields
            .iter()
            .flat_map(|f| [f.to_string(), snake_case(f)])
            .collect();
        format!("({})", names.join("|"))
    };
    let plain: Vec<&str> = UPDATABLE
        .iter()
        .copied()
        .filter(|f| !ON_THEIR_OWN.contains(f))
        .collect();
    let (rr, sir) = (
        alternatives(&ON_THEIR_OWN[..1]),
        alternatives(&ON_THEIR_OWN[1..]),
    );
    let plain = alternatives(&plain);
    let own = format!("({rr}|{sir})");
    format!("^ *({plain}( *, *{plain})*|({sir} *, *)*{rr}( *, *{own})*) *$")
}

/// The fields changed alone: `readReplicasMode`, with `secondaryIpRange` at most.
const ON_THEIR_OWN: [&str; 2] = ["readReplicasMode", "secondaryIpRange"];

/// Parses `updateMask` into its fields (camelCase, or the proto's snake_case names).
pub fn parse_mask(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let raw = raw
        .map(|s| s.trim_matches(' '))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::field(
                "updateMask",
                format!(
                    "is required: a comma-separated list of {}",
                    UPDATABLE.join(", ")
                ),
            )
        })?;
    let mut fields: Vec<String> = Vec::new();
    for path in raw.split(',').map(|p| p.trim_matches(' ')) {
        if let Some(field) = named(CREATE_ONLY, path) {
            return Err(create_only(field));
        }
        let Some(f) = named(UPDATABLE, path) else {
            return Err(ApiError::field(
                "updateMask",
                format!(
                    "'{path}' cannot be updated; updatable: {}",
                    UPDATABLE.join(", ")
                ),
            ));
        };
        if !fields.iter().any(|x| x == f) {
            fields.push(f.to_string());
        }
    }
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
    fn proto_names_are_accepted() {
        assert_eq!(snake_case("memorySizeGb"), "memory_size_gb");
        assert_eq!(snake_case("labels"), "labels");
        assert_eq!(
            parse_mask(Some("memory_size_gb,labels,display_name,labels")).unwrap(),
            ["memorySizeGb", "labels", "displayName"]
        );
        assert!(parse_mask(Some("transit_encryption_mode")).is_err());
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    /// The document's pattern accepts exactly what the parser accepts.
    #[test]
    fn pattern_matches_the_parser() {
        let re = regex::Regex::new(&pattern()).expect("a valid pattern");
        for mask in [
            "labels",
            "memory_size_gb,labels , displayName",
            " replicaCount ",
            "readReplicasMode",
            "secondary_ip_range,readReplicasMode",
            "read_replicas_mode, secondaryIpRange",
            "",
            "labels,",
            "transitEncryptionMode",
            "readReplicasMode,labels",
            "secondaryIpRange",
            "memory_sizeGb",
            "labels\t",
        ] {
            let parsed = parse_mask(Some(mask)).is_ok();
            assert_eq!(re.is_match(mask), parsed, "{mask:?}");
        }
    }
}
