//! The Memcached `parameters` an instance may set, with the syntax and range each value
//! must have and the `memcached` command-line argument each one becomes. One list for
//! the API (which refuses anything else with a 400 naming the parameter) and the agent
//! (which turns them into `memcached` arguments, [`memcached_args`]).
//!
//! Names and meanings follow Memorystore for Memcached; every accepted value is one
//! that `memcached` 1.6 (Debian's 1.6.18) starts with as it is.

use std::collections::BTreeMap;
use std::fmt;

/// The syntax and range of one parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRule {
    /// `true` or `false`.
    Bool,
    /// A plain decimal integer (no sign, leading zeros or units) from `min` to `max`.
    Int {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
    },
    /// A plain decimal integer from `min` to `max` that is a multiple of `step`, and at
    /// most half of the node's memory (`memcached` refuses a bigger item size).
    ItemSize {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
        /// What it must be a multiple of.
        step: u64,
    },
    /// A decimal number like `1.25` from `min` to `max` (in hundredths).
    Hundredths {
        /// The smallest value, in hundredths.
        min: u64,
        /// The largest value, in hundredths.
        max: u64,
    },
    /// One of these words, exactly.
    OneOf(&'static [&'static str]),
}

/// How a parameter becomes `memcached` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `-X <value>`.
    Value(&'static str),
    /// `-X` when the value is `true`, nothing when `false`.
    Switch(&'static str),
    /// The extended option `-o name=<value>`.
    Extended(&'static str),
    /// The extended option `-o on` when `true`, `-o off` when `false`.
    ExtendedSwitch {
        /// The option when `true`.
        on: &'static str,
        /// The option when `false` (`None`: nothing, the engine's default).
        off: Option<&'static str>,
    },
}

/// One parameter of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemcacheParam {
    /// Its name in `parameters.params`, e.g. `max-item-size`.
    pub name: &'static str,
    /// What its value must be.
    pub rule: ParamRule,
    /// The `memcached` argument it becomes.
    pub flag: Flag,
    /// `memcached`'s default (what a node runs with when the parameter is not set).
    pub default: &'static str,
}

/// `hash-algorithm` values.
pub const HASH_ALGORITHMS: &[&str] = &["murmur3", "jenkins", "xxh3"];

/// `memcached`'s `slab_chunk_max` (512 KiB): an item size must be a multiple of it.
pub const SLAB_CHUNK_MAX: u64 = 512 * 1024;

/// Every parameter `parameters.params` may hold.
pub const MEMCACHE_PARAMETERS: &[MemcacheParam] = &[
    MemcacheParam {
        name: "max-item-size",
        rule: ParamRule::ItemSize {
            min: 1024 * 1024,
            max: 128 * 1024 * 1024,
            step: SLAB_CHUNK_MAX,
        },
        flag: Flag::Value("-I"),
        default: "1048576",
    },
    MemcacheParam {
        name: "idle-timeout",
        rule: ParamRule::Int { min: 0, max: 86400 },
        flag: Flag::Extended("idle_timeout"),
        default: "0",
    },
    MemcacheParam {
        name: "track-sizes",
        rule: ParamRule::Bool,
        flag: Flag::ExtendedSwitch {
            on: "track_sizes",
            off: None,
        },
        default: "false",
    },
    MemcacheParam {
        name: "lru-crawler",
        rule: ParamRule::Bool,
        flag: Flag::ExtendedSwitch {
            on: "lru_crawler",
            off: Some("no_lru_crawler"),
        },
        default: "true",
    },
    MemcacheParam {
        name: "lru-maintainer",
        rule: ParamRule::Bool,
        flag: Flag::ExtendedSwitch {
            on: "lru_maintainer",
            off: Some("no_lru_maintainer"),
        },
        default: "true",
    },
    MemcacheParam {
        name: "maxconns-fast",
        rule: ParamRule::Bool,
        flag: Flag::ExtendedSwitch {
            on: "maxconns_fast",
            off: Some("no_maxconns_fast"),
        },
        default: "true",
    },
    MemcacheParam {
        name: "hash-algorithm",
        rule: ParamRule::OneOf(HASH_ALGORITHMS),
        flag: Flag::Extended("hash_algorithm"),
        default: "murmur3",
    },
    MemcacheParam {
        name: "listen-backlog",
        rule: ParamRule::Int { min: 1, max: 65535 },
        flag: Flag::Value("-b"),
        default: "1024",
    },
    MemcacheParam {
        name: "max-reqs-per-event",
        rule: ParamRule::Int { min: 1, max: 1000 },
        flag: Flag::Value("-R"),
        default: "20",
    },
    MemcacheParam {
        name: "slab-min-size",
        rule: ParamRule::Int { min: 48, max: 1024 },
        flag: Flag::Value("-n"),
        default: "48",
    },
    MemcacheParam {
        name: "slab-growth-factor",
        rule: ParamRule::Hundredths { min: 101, max: 400 },
        flag: Flag::Value("-f"),
        default: "1.25",
    },
    MemcacheParam {
        name: "disable-flush-all",
        rule: ParamRule::Bool,
        flag: Flag::Switch("-F"),
        default: "false",
    },
    MemcacheParam {
        name: "disable-cas",
        rule: ParamRule::Bool,
        flag: Flag::Switch("-C"),
        default: "false",
    },
    MemcacheParam {
        name: "disable-evictions",
        rule: ParamRule::Bool,
        flag: Flag::Switch("-M"),
        default: "false",
    },
];

/// The allow-listed parameter `name`, if it is one.
pub fn memcache_param(name: &str) -> Option<&'static MemcacheParam> {
    MEMCACHE_PARAMETERS.iter().find(|p| p.name == name)
}

/// The names of all allow-listed parameters, comma-separated (for error messages).
pub fn memcache_param_names() -> String {
    MEMCACHE_PARAMETERS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a parameter is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// The name is not in [`MEMCACHE_PARAMETERS`].
    Unknown,
    /// The value breaks the parameter's rule; the text states the rule.
    BadValue(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown => write!(
                f,
                "is not a supported parameter; supported: {}",
                memcache_param_names()
            ),
            ParamError::BadValue(rule) => f.write_str(rule),
        }
    }
}

impl ParamRule {
    /// Checks `value`; `memory_mb` (the node's memory) bounds [`ParamRule::ItemSize`]
    /// (`None`: not bounded by memory).
    pub fn check(&self, value: &str, memory_mb: Option<u32>) -> Result<(), String> {
        match *self {
            ParamRule::Bool => matches!(value, "true" | "false")
                .then_some(())
                .ok_or_else(|| "must be true or false".to_string()),
            ParamRule::Int { min, max } => match plain_integer(value) {
                Some(n) if (min..=max).contains(&n) => Ok(()),
                _ => Err(format!(
                    "must be a whole number from {min} to {max}, in digits without sign or leading zeros"
                )),
            },
            ParamRule::ItemSize { min, max, step } => {
                let half = memory_mb.map(|m| u64::from(m) * 1024 * 1024 / 2);
                let rule = || {
                    let bound = half
                        .map(|h| format!(" and at most half of the node's memory ({h})"))
                        .unwrap_or_default();
                    format!(
                        "must be a number of bytes from {min} to {max}, a multiple of {step}{bound}"
                    )
                };
                match plain_integer(value) {
                    Some(n)
                        if (min..=max).contains(&n)
                            && n % step == 0
                            && half.is_none_or(|h| n <= h) =>
                    {
                        Ok(())
                    }
                    _ => Err(rule()),
                }
            }
            ParamRule::Hundredths { min, max } => match hundredths(value) {
                Some(n) if (min..=max).contains(&n) => Ok(()),
                _ => Err(format!(
                    "must be a decimal number from {}.{:02} to {}.{:02} with at most two decimals",
                    min / 100,
                    min % 100,
                    max / 100,
                    max % 100
                )),
            },
            ParamRule::OneOf(words) => words
                .contains(&value)
                .then_some(())
                .ok_or_else(|| format!("must be one of {}", words.join(", "))),
        }
    }
}

/// Checks one parameter; `memory_mb` is the node's memory, which bounds
/// `max-item-size`.
pub fn check_parameter(name: &str, value: &str, memory_mb: Option<u32>) -> Result<(), ParamError> {
    let p = memcache_param(name).ok_or(ParamError::Unknown)?;
    p.rule.check(value, memory_mb).map_err(ParamError::BadValue)
}

/// The `memcached` arguments of `params`: each parameter's flag in the order of
/// [`MEMCACHE_PARAMETERS`], the extended options joined into one `-o a,b=c`. A
/// parameter that is unknown or whose value breaks its rule is an error naming it.
pub fn memcached_args(params: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    for (name, value) in params {
        check_parameter(name, value, None).map_err(|e| format!("parameter {name} {e}"))?;
    }
    let mut args = Vec::new();
    let mut extended = Vec::new();
    for p in MEMCACHE_PARAMETERS {
        let Some(value) = params.get(p.name) else {
            continue;
        };
        let on = value == "true";
        match p.flag {
            Flag::Value(f) => args.extend([f.to_string(), value.clone()]),
            Flag::Switch(f) => {
                if on {
                    args.push(f.to_string());
                }
            }
            Flag::Extended(o) => extended.push(format!("{o}={value}")),
            Flag::ExtendedSwitch { on: yes, off } => {
                if on {
                    extended.push(yes.to_string());
                } else if let Some(no) = off {
                    extended.push(no.to_string());
                }
            }
        }
    }
    if !extended.is_empty() {
        args.extend(["-o".to_string(), extended.join(",")]);
    }
    Ok(args)
}

/// Digits only, no sign, no leading zero (but `0` itself), at most 19 digits.
fn plain_integer(s: &str) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= 19
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

/// `D+` or `D+.D{1,2}` in hundredths (`1.25` → 125), at most 8 characters.
fn hundredths(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let ok = s.len() <= 8
        && !int.is_empty()
        && digits(int)
        && digits(frac)
        && frac.len() <= 2
        && s.contains('.') != frac.is_empty();
    if !ok {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let cents: u64 = format!("{frac:0<2}").parse().ok()?;
    Some(whole * 100 + cents)
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
    fn every_parameter_becomes_its_flag_and_extended_options_share_one_o() {
        let args = memcached_args(&params(&[
            ("max-item-size", "2097152"),
            ("idle-timeout", "60"),
            ("track-sizes", "true"),
            ("lru-crawler", "false"),
            ("disable-cas", "true"),
            ("disable-flush-all", "false"),
            ("slab-growth-factor", "1.5"),
        ]))
        .expect("valid");
        assert_eq!(
            args,
            [
                "-I",
                "2097152",
                "-f",
                "1.5",
                "-C",
                "-o",
                "idle_timeout=60,track_sizes,no_lru_crawler"
            ]
        );
        assert!(memcached_args(&BTreeMap::new()).expect("none").is_empty());
        assert_eq!(
            memcached_args(&params(&[("track-sizes", "false")])).expect("valid"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = memcached_args(&params(&[("max-item-size", "1000")])).expect_err("too small");
        assert!(e.starts_with("parameter max-item-size must be"), "{e}");
        let e = memcached_args(&params(&[("port", "1")])).expect_err("unknown");
        assert!(e.contains("not a supported parameter"), "{e}");
    }

    #[test]
    fn values_follow_their_rules() {
        assert!(check_parameter("max-item-size", "1048576", Some(1024)).is_ok());
        assert!(check_parameter("max-item-size", "134217728", Some(1024)).is_ok());
        for v in ["1048577", "524288", "134742016", "1m", "01048576", ""] {
            assert!(
                check_parameter("max-item-size", v, None).is_err(),
                "{v:?} must be refused"
            );
        }
        // Half of 64 MB is 32 MB.
        assert!(check_parameter("max-item-size", "33554432", Some(64)).is_ok());
        let e = check_parameter("max-item-size", "33554432", Some(32)).expect_err("half");
        assert!(e.to_string().contains("half of the node's memory"), "{e}");
        assert!(check_parameter("idle-timeout", "0", None).is_ok());
        assert!(check_parameter("idle-timeout", "86401", None).is_err());
        assert!(check_parameter("track-sizes", "True", None).is_err());
        assert!(check_parameter("hash-algorithm", "xxh3", None).is_ok());
        assert!(check_parameter("hash-algorithm", "md5", None).is_err());
        for ok in ["1.01", "1.25", "1.5", "2", "4.00"] {
            assert!(
                check_parameter("slab-growth-factor", ok, None).is_ok(),
                "{ok}"
            );
        }
        for v in ["1", "1.001", "1.", ".5", "4.01", "-1.5", "1e1", "nan"] {
            assert!(
                check_parameter("slab-growth-factor", v, None).is_err(),
                "{v:?} must be refused"
            );
        }
        assert_eq!(
            check_parameter("MAX-ITEM-SIZE", "1048576", None),
            Err(ParamError::Unknown)
        );
    }

    #[test]
    fn defaults_are_valid_values() {
        for p in MEMCACHE_PARAMETERS {
            assert!(p.rule.check(p.default, None).is_ok(), "{}", p.name);
        }
    }
}
