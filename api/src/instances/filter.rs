//! The `filter` of list instances: terms joined by `AND` (or spaces), each one of
//! `state=READY`, `tier=STANDARD_HA`, `labels.KEY=VALUE`, or `labels.KEY:*` (has the
//! label). `:` may stand for `=` as in gcloud filters.

use cacheplane_types::{InstanceState, Tier};

use crate::error::{ApiError, ApiResult};

pub use crate::db::instances::{Filter, Term};

/// The longest filter, in characters.
pub const MAX_CHARS: usize = 1000;

/// The characters that separate terms (`str::split_ascii_whitespace`).
const SPACE: &str = "[ \\t\\n\\f\\r]";

/// The filter's grammar as a regular expression, for the document: exactly what
/// [`parse`] accepts (within [`MAX_CHARS`]).
pub fn pattern() -> String {
    let word = "[^\\x00 \\t\\n\\f\\r]";
    let states: Vec<&str> = InstanceState::ALL.iter().map(|s| s.as_str()).collect();
    let tiers: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
    let term = format!(
        "([Aa][Nn][Dd]|state[=:]\"*({})\"*|tier[=:]\"*({})\"*|labels\\.[^\\x00=: \\t\\n\\f\\r]+[=:]{word}*)",
        states.join("|"),
        tiers.join("|")
    );
    format!("^{SPACE}*({term}({SPACE}+{term})*)?{SPACE}*$")
}

fn bad(msg: String) -> ApiError {
    ApiError::field("filter", msg)
}

/// Parses a filter; an empty one matches everything.
pub fn parse(raw: Option<&str>) -> ApiResult<Filter> {
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
        let term =
            match key {
                "state" => Term::State(InstanceState::parse(value).ok_or_else(|| {
                    bad(format!("'{value}' is not an instance state such as READY"))
                })?),
                "tier" => Term::Tier(
                    Tier::parse(value)
                        .ok_or_else(|| bad(format!("'{value}' is not BASIC or STANDARD_HA")))?,
                ),
                _ => match key.strip_prefix("labels.") {
                    Some(k) if !k.is_empty() => Term::Label {
                        key: k.to_string(),
                        value: (value != "*").then(|| value.to_string()),
                    },
                    _ => {
                        return Err(bad(format!(
                            "cannot filter on '{key}'; use state, tier or labels.KEY"
                        )))
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
                Term::State(InstanceState::Ready),
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
        let re = regex::Regex::new(&pattern()).expect("a valid pattern");
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
