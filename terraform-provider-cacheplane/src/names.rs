//! Resource names: the API's full names (`projects/p/locations/r/instances/id`,
//! `projects/p/networks/id`), the ids `terraform import` also takes, and network
//! references, which a configuration may spell as an id (`default`) or a full name.

use tf_provider::value::Value;

use crate::schema::changes;

/// Where a regional resource lives and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regional {
    /// The project.
    pub project: String,
    /// The region.
    pub region: String,
    /// The resource's own id.
    pub id: String,
}

impl Regional {
    /// `projects/{project}/locations/{region}/{collection}/{id}`.
    pub fn full_name(&self, collection: &str) -> String {
        format!(
            "projects/{}/locations/{}/{collection}/{}",
            self.project, self.region, self.id
        )
    }

    /// The API path segments of the resource (under `/v1`).
    pub fn path<'a>(&'a self, collection: &'a str) -> Vec<&'a str> {
        let mut path = self.collection(collection);
        path.push(self.id.as_str());
        path
    }

    /// The API path segments of its collection.
    pub fn collection<'a>(&'a self, collection: &'a str) -> Vec<&'a str> {
        vec![
            "projects",
            self.project.as_str(),
            "locations",
            self.region.as_str(),
            collection,
        ]
    }
}

/// Parses what `terraform import` was given for a resource of `collection`: a full name
/// `projects/P/locations/R/COLLECTION/ID`, or an `ID` in the provider's project and
/// region.
pub fn parse_regional(
    import_id: &str,
    collection: &str,
    project: &str,
    region: &str,
) -> Result<Regional, String> {
    let parts: Vec<&str> = import_id.trim().split('/').collect();
    match parts.as_slice() {
        [id] if !id.is_empty() => Ok(Regional {
            project: project.to_string(),
            region: region.to_string(),
            id: id.to_string(),
        }),
        ["projects", p, "locations", r, c, id]
            if *c == collection && ![p, r, id].iter().any(|s| s.is_empty()) =>
        {
            Ok(Regional {
                project: p.to_string(),
                region: r.to_string(),
                id: id.to_string(),
            })
        }
        _ => Err(format!(
            "'{import_id}' is neither an id nor a full name \
             projects/PROJECT/locations/REGION/{collection}/ID"
        )),
    }
}

/// Parses what `terraform import` was given for a network: `projects/P/networks/ID`, or
/// an `ID` in the provider's project. Returns (project, id).
pub fn parse_network(import_id: &str, project: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = import_id.trim().split('/').collect();
    match parts.as_slice() {
        [id] if !id.is_empty() => Ok((project.to_string(), id.to_string())),
        ["projects", p, "networks", id] if !p.is_empty() && !id.is_empty() => {
            Ok((p.to_string(), id.to_string()))
        }
        _ => Err(format!(
            "'{import_id}' is neither a network id nor a full name projects/PROJECT/networks/ID"
        )),
    }
}

/// The full name of a network reference of `project`: an id becomes
/// `projects/{project}/networks/{id}`; a full name stays as it is.
pub fn full_network(reference: &str, project: &str) -> String {
    if reference.contains('/') {
        reference.to_string()
    } else {
        format!("projects/{project}/networks/{reference}")
    }
}

/// Whether two network references of `project` name the same network.
pub fn same_network(a: &str, b: &str, project: &str) -> bool {
    full_network(a, project) == full_network(b, project)
}

/// Whether a planned network reference changes from the prior one (of `project`): the
/// same network spelt another way does not; an unknown one may.
pub fn network_changes(prior: &Value<String>, planned: &Value<String>, project: &str) -> bool {
    match (prior, planned) {
        (Value::Value(a), Value::Value(b)) => !same_network(a, b, project),
        (a, b) => changes(a, b),
    }
}

/// How state spells the network `full` the API returned: as `prior` spelt it when that
/// names the same network, else as the id when the network is in `project`, else in full.
pub fn network_spelling(full: &str, prior: Option<&str>, project: &str) -> String {
    if let Some(p) = prior {
        if same_network(p, full, project) {
            return p.to_string();
        }
    }
    match full.strip_prefix(&format!("projects/{project}/networks/")) {
        Some(id) if !id.contains('/') => id.to_string(),
        _ => full.to_string(),
    }
}

/// The last segment of a full name (its id).
pub fn id_of(full: &str) -> &str {
    full.rsplit('/').next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_in_both_spellings() {
        let full = parse_regional("projects/p/locations/r/instances/x", "instances", "q", "s");
        let short = parse_regional("x", "instances", "p", "r");
        assert_eq!(full, short);
        assert_eq!(
            full.unwrap().full_name("instances"),
            "projects/p/locations/r/instances/x"
        );
        assert!(
            parse_regional("projects/p/locations/r/networks/x", "instances", "p", "r").is_err()
        );
        assert!(parse_regional("a/b", "instances", "p", "r").is_err());
        assert!(parse_regional("", "instances", "p", "r").is_err());
        assert_eq!(
            parse_network("projects/p/networks/n", "q"),
            Ok(("p".into(), "n".into()))
        );
        assert_eq!(parse_network("n", "q"), Ok(("q".into(), "n".into())));
    }

    #[test]
    fn network_references() {
        assert!(same_network("default", "projects/p/networks/default", "p"));
        assert!(!same_network("default", "projects/q/networks/default", "p"));
        let v = |s: &str| Value::Value(s.to_string());
        let full = v("projects/p/networks/default");
        assert!(!network_changes(&v("default"), &full, "p"));
        assert!(network_changes(&v("default"), &v("other"), "p"));
        assert!(network_changes(&v("default"), &Value::Unknown, "p"));
        let full = "projects/p/networks/main";
        assert_eq!(network_spelling(full, Some(full), "p"), full);
        assert_eq!(network_spelling(full, Some("main"), "p"), "main");
        assert_eq!(network_spelling(full, None, "p"), "main");
        assert_eq!(network_spelling(full, Some("other"), "p"), "main");
        assert_eq!(network_spelling(full, None, "q"), full);
        assert_eq!(id_of(full), "main");
    }
}
