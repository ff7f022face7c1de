//! The `filter` of list instances (and of list Memcached instances): terms joined by
//! `AND` (or spaces), each one of `state=READY`, `tier=STANDARD_HA` (Redis only),
//! `labels.KEY=VALUE`, or `labels.KEY:*` (has the label). `:` may stand for `=` as in
//! gcloud filters.

use cacheplane_types::{InstanceState, Tier};

use crate::error::{ApiError, ApiResult};

pub use crate::db::instances::{Filter, Term};

/// The longest filter, in characters.
pub const MAX_CHARS: usize = 1000;

/// The characters that separate terms (`str::split_ascii_whitespace`).
const SPACE: &str = "[ \\t\\n\\f\\r]";

/// The filter's grammar as a regular expression, for the document: exactly what
/// [`parse_for`] accepts of `subject` (within [`MAX_CHARS`]).
pub fn pattern(subject: Subject) -> String {
    let word = "[^\\x00 \\t\\n\\f\\r]";
    let mut kinds = vec![format!("state[=:]\"*({})\"*", subject.states.join("|"))];
    if subject.tier {
        let tiers: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
        kinds.push(format!("tier[=:]\"*({})\"*", tiers.join("|")));
    }
    let term = format!(
        "([Aa][Nn][Dd]|{}|labels\\.[^\\x00=: \\t\\n\\f\\r]+[=:]{word}*)",
        kinds.join("|")
    );
    format!("^{SPACE}*({term}({SPACE}+{term})*)?{SPACE}*$")
}

fn bad(msg: String) -> ApiError {
    ApiError::field("filter", msg)
}

/// What a list's filter may name besides labels.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// The resource's states by wire name (`None`: not one).
    pub state: fn(&str) -> Option<&'static str>,
    /// Every state by wire name (for the document's pattern).
    pub states: &'static [&'static str],
    /// What a state is called in errors, e.g. `an instance state such as READY`.
    pub state_example: &'static str,
    /// Whether `tier=` may be used (Redis instances).
    pub tier: bool,
}

/// Redis instances: `state`, `tier`, `labels.KEY`.
pub const INSTANCES: Subject = Subject {
    state: |s| InstanceState::parse(s).map(InstanceState::as_str),
    states: &[
        "CREATING",
        "READY",
        "UPDATING",
        "DELETING",
        "REPAIRING",
        "FAILING_OVER",
        "FAILED",
    ],
    state_example: "an instance state such as READY",
    tier: true,
};

/// Parses a filter of the instance list; an empty one matches everything.
pub fn parse(raw: Option<&str>) -> ApiResult<Filter> {
    parse_for(raw, INSTANCES)
}

/// Parses a filter of a list of `subject`; an empty one matches everything.
pub fn parse_for(raw: Option<&str>, subject: Subject) -> ApiResult<Filter> {
    let mut terms = Vec::new();
    let Some(raw) = raw else {
        return Ok(Filter::default());
    };
    if raw.chars().count() > MAX_CHARS {
        return Err(bad(format!("must be at most {MAX_CHARS} characters")));
    }
    for word in raw.split_ascii_whitespace() {
        if word.eq_ignore_ascii_case("AND") {
            continue;
        }
        let Some(i) = word.find(['=', ':']) else {
            return Err(bad(format!(
                "'{word}' is not a term such as state=READY or labels.env=prod"
            )));
        };
        let (key, value) = (&word[..i], word[i + 1..].trim_matches('"'));
        let term = match key {
            "state" => Term::State(
                (subject.state)(value)
                    .ok_or_else(|| bad(format!("'{value}' is not {}", subject.state_example)))?,
            ),
            "tier" if subject.tier => Term::Tier(
                Tier::parse(value)
                    .ok_or_else(|| bad(format!("'{value}' is not BASIC or STANDARD_HA")))?,
            ),
            _ => match key.strip_prefix("labels.") {
                Some(k) if !k.is_empty() => Term::Label {
                    key: k.to_string(),
                    value: (value != "*").then(|| value.to_string()),
                },
                _ => {
                    let keys = if subject.tier {
                        "state, tier or labels.KEY"
                    } else {
                        "state or labels.KEY"
                    };
                    return Err(bad(format!("cannot filter on '{key}'; use {keys}")));
                }
            },
        };
        terms.push(term);
    }
    Ok(Filter { terms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terms() {
        let f = parse(Some("state=READY AND labels.env:prod labels.team:*")).unwrap();
        assert_eq!(
            f.terms,
            vec![
                Term::State("READY"),
                Term::Label {
                    key: "env".into(),
                    value: Some("prod".into())
                },
                Term::Label {
                    key: "team".into(),
                    value: None
                },
            ]
        );
        assert_eq!(parse(Some("")).unwrap(), Filter::default());
    }

    /// The document's pattern accepts exactly what the parser accepts.
    #[test]
    fn pattern_matches_the_parser() {
        let states: Vec<&str> = InstanceState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(INSTANCES.states, states.as_slice(), "every state, in order");
        let memcache: Vec<&str> = cacheplane_types::MemcacheInstanceState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(crate::memcache::read::FILTER.states, memcache.as_slice());
        let re = regex::Regex::new(&pattern(INSTANCES)).expect("a valid pattern");
        for filter in [
            "state=READY",
            " state=READY AND labels.env:prod\tlabels.team:* and tier=BASIC ",
            "state=\"READY\"",
            "labels.a=",
            "AND",
            "",
            "state=SLEEPING",
            "color=red",
            "ready",
            "labels.=x",
            "state=READY\u{a0}tier=BASIC",
            "labels.k=v\u{2003}x",
        ] {
            let parsed = parse(Some(filter)).is_ok();
            assert_eq!(re.is_match(filter), parsed, "{filter:?}");
        }
    }

    #[test]
    fn rejects_bad_terms() {
        assert!(parse(Some("state=SLEEPING")).is_err());
        assert!(parse(Some("color=red")).is_err());
        assert!(parse(Some("ready")).is_err());
        assert!(parse(Some("labels.=x")).is_err());
    }
}
