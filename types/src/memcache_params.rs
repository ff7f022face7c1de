//! The Memcached parameters a user may set (`parameters.params` of a Memcached instance),
//! each with its rule and the `memcached` command-line options it becomes. The API
//! validates with this table and the agent starts `memcached` with it, so both sides
//! read one list.

use std::collections::BTreeMap;

/// How a parameter's value is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A whole number in `min..=max` (and a multiple of `step`).
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
        /// The value must be a multiple of this (1: any).
        step: i64,
    },
    /// A decimal number in `min..=max`.
    Decimal {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// `true` or `false`.
    Boolean,
}

/// One allowed parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamDef {
    /// Its name in `parameters.params`, as Memorystore spells it.
    pub name: &'static str,
    /// Its rule.
    pub kind: ParamKind,
    /// What it does, for errors and docs.
    pub description: &'static str,
    /// How it reaches `memcached`: see [`ParamDef::args`].
    pub flag: Flag,
}

/// How a parameter becomes `memcached` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `-X VALUE` (e.g. `-I 2097152`).
    Value(&'static str),
    /// `-o NAME=VALUE` (e.g. `-o idle_timeout=60`).
    Extended(&'static str),
    /// `true`: `-X`; `false`: nothing.
    Switch(&'static str),
    /// `true`: `-o NAME`; `false`: `-o NEGATED`, or nothing when there is no negation
    /// (the option is off by default).
    ExtendedSwitch(&'static str, Option<&'static str>),
}

/// Every parameter a Memcached instance accepts, by name.
pub const MEMCACHE_PARAMS: &[ParamDef] = &[
    ParamDef {
        name: "disable-flush-all",
        kind: ParamKind::Boolean,
        description: "refuse the flush_all command",
        flag: Flag::Switch("-F"),
    },
    ParamDef {
        name: "idle-timeout",
        kind: ParamKind::Integer {
            min: 0,
            max: 86_400,
            step: 1,
        },
        description: "seconds after which an idle client connection is closed (0: never)",
        flag: Flag::Extended("idle_timeout"),
    },
    ParamDef {
        name: "listen-backlog",
        kind: ParamKind::Integer {
            min: 1,
            max: 65_535,
            step: 1,
        },
        description: "the listen queue length",
        flag: Flag::Value("-b"),
    },
    ParamDef {
        name: "lru-crawler",
        kind: ParamKind::Boolean,
        description: "run the LRU crawler, which reclaims expired items in the background",
        flag: Flag::ExtendedSwitch("lru_crawler", Some("no_lru_crawler")),
    },
    ParamDef {
        name: "max-item-size",
        kind: ParamKind::Integer {
            min: 1_048_576,
            max: 134_217_728,
            step: 1024,
        },
        description:
            "the largest item in bytes (a multiple of 1024, at most half the node's memory)",
        flag: Flag::Value("-I"),
    },
    ParamDef {
        name: "slab-growth-factor",
        kind: ParamKind::Decimal {
            min: 1.01,
            max: 100.0,
        },
        description: "the ratio between the chunk sizes of consecutive slab classes",
        flag: Flag::Value("-f"),
    },
    ParamDef {
        name: "track-sizes",
        kind: ParamKind::Boolean,
        description: "keep the item size histogram of `stats sizes` up to date",
        flag: Flag::ExtendedSwitch("track_sizes", None),
    },
];

/// The definition of parameter `name`, if it is allowed.
pub fn memcache_param(name: &str) -> Option<&'static ParamDef> {
    MEMCACHE_PARAMS.iter().find(|p| p.name == name)
}

/// The names of every allowed parameter, comma-separated (for errors).
pub fn memcache_param_names() -> String {
    MEMCACHE_PARAMS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ParamDef {
    /// Checks `value`; the error says the rule (the caller names the field).
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self.kind {
            ParamKind::Boolean => match value {
                "true" | "false" => Ok(()),
                _ => Err(format!("'{value}' is not true or false")),
            },
            ParamKind::Integer { min, max, step } => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("'{value}' is not a whole number"))?;
                if !(min..=max).contains(&n) {
                    return Err(format!("{n} is not between {min} and {max}"));
                }
                if n % step != 0 {
                    return Err(format!("{n} is not a multiple of {step}"));
                }
                Ok(())
            }
            ParamKind::Decimal { min, max } => {
                let x: f64 = value
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite())
                    .ok_or_else(|| format!("'{value}' is not a number"))?;
                if !(min..=max).contains(&x) {
                    return Err(format!("{x} is not between {min} and {max}"));
                }
                Ok(())
            }
        }
    }

    /// The `memcached` arguments for `value` (already checked).
    pub fn args(&self, value: &str) -> Vec<String> {
        let on = value == "true";
        match self.flag {
            Flag::Value(f) => vec![f.to_string(), value.to_string()],
            Flag::Extended(name) => vec!["-o".into(), format!("{name}={value}")],
            Flag::Switch(f) if on => vec![f.to_string()],
            Flag::Switch(_) => Vec::new(),
            Flag::ExtendedSwitch(name, _) if on => vec!["-o".into(), name.to_string()],
            Flag::ExtendedSwitch(_, Some(negated)) => vec!["-o".into(), negated.to_string()],
            Flag::ExtendedSwitch(_, None) => Vec::new(),
        }
    }
}

/// Checks every parameter: INVALID with `(key, rule)` for an unknown name or a bad value.
pub fn check_memcache_params(params: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (k, v) in params {
        let def = memcache_param(k).ok_or_else(|| {
            (
                k.clone(),
                format!(
                    "'{k}' is not a Memcached parameter this API sets; allowed: {}",
                    memcache_param_names()
                ),
            )
        })?;
        def.check(v).map_err(|rule| (k.clone(), rule))?;
    }
    Ok(())
}

/// The `memcached` arguments for a node's parameters, in name order; unknown names are
/// skipped (the API never sends one).
pub fn memcache_param_args(params: &BTreeMap<String, String>) -> Vec<String> {
    params
        .iter()
        .filter_map(|(k, v)| Some(memcache_param(k)?.args(v)))
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_checked_by_their_rule() {
        // (case, params, the key at fault or None)
        let cases: Vec<(&str, Vec<(&str, &str)>, Option<&str>)> = vec![
            (
                "all good",
                vec![
                    ("max-item-size", "2097152"),
                    ("track-sizes", "true"),
                    ("slab-growth-factor", "1.5"),
                ],
                None,
            ),
            (
                "unknown name",
                vec![("maxmemory-policy", "lru")],
                Some("maxmemory-policy"),
            ),
            (
                "not a multiple of 1024",
                vec![("max-item-size", "2097153")],
                Some("max-item-size"),
            ),
            (
                "too small",
                vec![("max-item-size", "1024")],
                Some("max-item-size"),
            ),
            (
                "not a number",
                vec![("idle-timeout", "soon")],
                Some("idle-timeout"),
            ),
            (
                "not a boolean",
                vec![("lru-crawler", "yes")],
                Some("lru-crawler"),
            ),
            (
                "not finite",
                vec![("slab-growth-factor", "NaN")],
                Some("slab-growth-factor"),
            ),
        ];
        for (case, p, want) in cases {
            let got = check_memcache_params(&params(&p)).err().map(|(k, _)| k);
            assert_eq!(got.as_deref(), want, "{case}");
        }
    }

    #[test]
    fn parameters_become_memcached_options() {
        let p = params(&[
            ("idle-timeout", "60"),
            ("lru-crawler", "false"),
            ("max-item-size", "2097152"),
            ("track-sizes", "true"),
            ("disable-flush-all", "false"),
        ]);
        assert_eq!(
            memcache_param_args(&p),
            [
                "-o",
                "idle_timeout=60",
                "-o",
                "no_lru_crawler",
                "-I",
                "2097152",
                "-o",
                "track_sizes"
            ]
        );
    }
}
