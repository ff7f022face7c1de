//! Parsing the wire names of enums (`READY`, `STANDARD_HA`, `create`, …) from text, as
//! stored in the database: an unknown name is an error, never a silent default.

use std::fmt;

/// A name that is not one of an enum's wire names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was being parsed, e.g. `instance state`.
    pub what: &'static str,
    /// The text that did not match.
    pub value: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a known {}", self.value, self.what)
    }
}

impl std::error::Error for UnknownName {}

/// Implements `FromStr` and `TryFrom<String>` through the type's `parse`, so that a
/// database layer can decode a text column into the enum once, when it reads the row.
macro_rules! parse_by_name {
    ($ty:ty, $what:literal) => {
        impl std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::parse(s).ok_or_else(|| $crate::names::UnknownName {
                    what: $what,
                    value: s.to_string(),
                })
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::names::UnknownName;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

parse_by_name!(crate::InstanceState, "instance state");
parse_by_name!(crate::Tier, "tier");
parse_by_name!(crate::NodeRole, "node role");
parse_by_name!(crate::TokenKind, "token kind");
parse_by_name!(crate::OperationVerb, "operation verb");
parse_by_name!(crate::ConnectorState, "connector state");
parse_by_name!(crate::MemcacheInstanceState, "memcache instance state");

#[cfg(test)]
mod tests {
    use crate::{InstanceState, NodeRole, OperationVerb, Tier, TokenKind};

    #[test]
    fn every_name_round_trips() {
        for s in InstanceState::ALL {
            assert_eq!(s.as_str().parse::<InstanceState>(), Ok(s));
        }
        for t in [Tier::Basic, Tier::StandardHa] {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        }
        for r in [NodeRole::Primary, NodeRole::Replica] {
            assert_eq!(r.as_str().parse::<NodeRole>(), Ok(r));
        }
        for k in [TokenKind::Admin, TokenKind::Project, TokenKind::Host] {
            assert_eq!(k.as_str().parse::<TokenKind>(), Ok(k));
        }
        for v in OperationVerb::ALL {
            assert_eq!(v.as_str().parse::<OperationVerb>(), Ok(v));
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = "PREMIUM".parse::<Tier>().unwrap_err();
        assert_eq!(e.to_string(), "'PREMIUM' is not a known tier");
        assert!(TryFrom::<String>::try_from("ready".to_string())
            .map(|s: InstanceState| s)
            .is_err());
        assert!("CREATE".parse::<OperationVerb>().is_err());
    }
}
