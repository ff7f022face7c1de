//! The shape of resource ids (projects, networks, instances): lowercase letters, digits
//! and hyphens, starting with a letter and not ending with a hyphen.

/// Whether `id` is `min..=max` characters of the resource id shape.
pub fn is_resource_id(id: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids() {
        for (id, ok) in [
            ("a", true),
            ("my-cache-2", true),
            ("", false),
            ("2a", false),
            ("a-", false),
            ("A", false),
            ("a_b", false),
            ("abcdefghijk", false),
        ] {
            assert_eq!(is_resource_id(id, 1, 10), ok, "{id}");
        }
    }
}
