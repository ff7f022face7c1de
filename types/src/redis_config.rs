//! The `redisConfigs` keys an instance may set, with the syntax and range each value must
//! have. One list for the API (which refuses anything else with a 400 naming the key) and
//! the agent (which passes only these keys to its engines).
//!
//! Every value accepted here is accepted by Redis 7.0 as it is, in `redis.conf` and by
//! `CONFIG SET`: the syntax is a strict subset of Redis's (plain decimal integers without
//! sign, leading zeros or units), and the ranges are Redis's own, narrowed where Redis's
//! range makes no sense for a managed cache (see each key).

use std::fmt;

/// The syntax and range of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// One of these words, exactly.
    OneOf(&'static [&'static str]),
    /// A plain decimal integer from `min` to `max`.
    Int {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
    },
    /// Keyspace event classes: any of the letters of [`KEYSPACE_EVENT_CLASSES`], each at
    /// most once, or empty (off).
    KeyspaceEvents,
    /// `maxmemory-gb`: a decimal number of GiB (`1`, `0.5`), at least
    /// [`MIN_MAXMEMORY_GB`] and at most the instance's memory size.
    Gigabytes,
}

/// One setting of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    /// Its name, as in `redis.conf`.
    pub name: &'static str,
    /// What its value must be.
    pub rule: Rule,
    /// The engine's default, restored when the key is removed; `None` for
    /// `maxmemory-gb`, which the agent turns into `maxmemory`.
    pub default: Option<&'static str>,
}

/// `maxmemory-policy` values (seed 001).
pub const MAXMEMORY_POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
];

/// The `maxmemory-policy` an instance gets when its create names none (Memorystore's
/// default): the API adds it to `redisConfigs`, and the Terraform provider knows it for
/// that reason.
pub const DEFAULT_MAXMEMORY_POLICY: &str = "volatile-lru";

/// The event classes of `notify-keyspace-events` in Redis 7.0.
pub const KEYSPACE_EVENT_CLASSES: &str = "KEg$lshzxetmdnA";

/// The smallest `maxmemory-gb`: 0.1 GiB. Below it an engine cannot hold even its own
/// buffers, and `0` would mean no limit at all.
pub const MIN_MAXMEMORY_GB: f64 = 0.1;

/// `INT_MAX`, the top of Redis's `int` settings.
const INT_MAX: u64 = i32::MAX as u64;
/// `LLONG_MAX`, the top of Redis's `long long` settings.
const LLONG_MAX: u64 = i64::MAX as u64;

/// Every key `redisConfigs` may hold.
pub const REDIS_CONFIGS: &[ConfigKey] = &[
    ConfigKey {
        name: "maxmemory-policy",
        rule: Rule::OneOf(MAXMEMORY_POLICIES),
        default: Some("noeviction"),
    },
    ConfigKey {
        name: "maxmemory-gb",
        rule: Rule::Gigabytes,
        default: None,
    },
    ConfigKey {
        name: "notify-keyspace-events",
        rule: Rule::KeyspaceEvents,
        default: Some(""),
    },
    ConfigKey {
        name: "activedefrag",
        rule: Rule::OneOf(&["yes", "no"]),
        default: Some("no"),
    },
    // Redis: 0 to INT_MAX for both.
    ConfigKey {
        name: "lfu-log-factor",
        rule: Rule::Int {
            min: 0,
            max: INT_MAX,
        },
        default: Some("10"),
    },
    ConfigKey {
        name: "lfu-decay-time",
        rule: Rule::Int {
            min: 0,
            max: INT_MAX,
        },
        default: Some("1"),
    },
    // Redis: a memory size from 0 to LONG_MAX; here bytes without units.
    ConfigKey {
        name: "stream-node-max-bytes",
        rule: Rule::Int {
            min: 0,
            max: LLONG_MAX,
        },
        default: Some("4096"),
    },
    ConfigKey {
        name: "stream-node-max-entries",
        rule: Rule::Int {
            min: 0,
            max: LLONG_MAX,
        },
        default: Some("100"),
    },
    // Seconds an idle client may stay connected (0: forever). Redis: 0 to INT_MAX.
    ConfigKey {
        name: "timeout",
        rule: Rule::Int {
            min: 0,
            max: INT_MAX,
        },
        default: Some("0"),
    },
];

/// The allow-listed key `name`, if it is one.
pub fn config_key(name: &str) -> Option<&'static ConfigKey> {
    REDIS_CONFIGS.iter().find(|k| k.name == name)
}

/// The names of all allow-listed keys, comma-separated (for error messages).
pub fn config_key_names() -> String {
    REDIS_CONFIGS
        .iter()
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a `redisConfigs` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The key is not in [`REDIS_CONFIGS`].
    UnknownKey,
    /// The value breaks the key's rule; the text states the rule.
    BadValue(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey => write!(
                f,
                "is not a supported setting; supported: {}",
                config_key_names()
            ),
            ConfigError::BadValue(rule) => f.write_str(rule),
        }
    }
}

impl Rule {
    /// Checks `value`; `memory_gb` bounds [`Rule::Gigabytes`] (`None`: unbounded above,
    /// as the agent checks it, knowing only the bytes of its spec).
    pub fn check(&self, value: &str, memory_gb: Option<f64>) -> Result<(), String> {
        match *self {
            Rule::OneOf(words) => words
                .contains(&value)
                .then_some(())
                .ok_or_else(|| format!("must be one of {}", words.join(", "))),
            Rule::Int { min, max } => match plain_integer(value) {
                Some(n) if (min..=max).contains(&n) => Ok(()),
                _ => Err(format!(
                    "must be a whole number from {min} to {max}, in digits without sign or leading zeros"
                )),
            },
            // Redis takes a class twice as once; the length bound keeps values short.
            Rule::KeyspaceEvents => {
                let classes = value.chars().all(|c| KEYSPACE_EVENT_CLASSES.contains(c));
                if classes && value.chars().count() <= KEYSPACE_EVENT_CLASSES.len() {
                    Ok(())
                } else {
                    Err(format!(
                        "must be event classes from {KEYSPACE_EVENT_CLASSES}, at most {} of them, or empty",
                        KEYSPACE_EVENT_CLASSES.len()
                    ))
                }
            }
            Rule::Gigabytes => {
                let upper = memory_gb.map(|m| format!(" and at most memorySizeGb ({m})"));
                let rule = || {
                    format!(
                        "must be a number of GB written like 1 or 0.5, at least {MIN_MAXMEMORY_GB}{}",
                        upper.clone().unwrap_or_default()
                    )
                };
                let gb = decimal(value).ok_or_else(rule)?;
                if gb < MIN_MAXMEMORY_GB || memory_gb.is_some_and(|m| gb > m) {
                    return Err(rule());
                }
                Ok(())
            }
        }
    }
}

/// Checks one `redisConfigs` entry; `memory_gb` is the instance's memory size, which
/// bounds `maxmemory-gb`.
pub fn check_config(key: &str, value: &str, memory_gb: Option<f64>) -> Result<(), ConfigError> {
    let k = config_key(key).ok_or(ConfigError::UnknownKey)?;
    k.rule
        .check(value, memory_gb)
        .map_err(ConfigError::BadValue)
}

/// `maxmemory-gb` in GiB when it is valid (at least [`MIN_MAXMEMORY_GB`]), else `None`.
pub fn maxmemory_gb(value: &str) -> Option<f64> {
    decimal(value).filter(|gb| *gb >= MIN_MAXMEMORY_GB)
}

/// Digits only, no sign, no leading zero (but `0` itself), at most 19 digits.
fn plain_integer(s: &str) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= 19
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

/// `D+` or `D+.D+` (no sign, exponent, `nan` or `inf`), at most 12 characters.
fn decimal(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let ok = s.len() <= 12 && digits(int) && frac.is_none_or(digits);
    ok.then(|| s.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(key: &str, value: &str) -> bool {
        matches!(
            check_config(key, value, Some(1.0)),
            Err(ConfigError::BadValue(_))
        )
    }

    #[test]
    fn maxmemory_gb_is_a_plain_positive_number_within_the_size() {
        for ok in ["1", "0.5", "0.1", "1.0"] {
            assert!(check_config("maxmemory-gb", ok, Some(1.0)).is_ok(), "{ok}");
        }
        for v in [
            "1e-10", "nan", "NaN", "inf", "-1", "0", "0.0", "0.09", "1.5", "", " 1", "+1", ".5",
            "5.", "0x1", "1_0",
        ] {
            assert!(bad("maxmemory-gb", v), "{v:?} must be refused");
        }
        assert_eq!(maxmemory_gb("0.5"), Some(0.5));
        assert_eq!(maxmemory_gb("1e-10"), None);
        assert_eq!(maxmemory_gb("0"), None);
        assert!(check_config("maxmemory-gb", "300", None).is_ok());
    }

    #[test]
    fn integers_are_plain_and_in_range() {
        assert!(check_config("timeout", "0", None).is_ok());
        assert!(check_config("timeout", "300", None).is_ok());
        assert!(check_config("lfu-log-factor", "2147483647", None).is_ok());
        for v in [
            "-1",
            "01",
            "+3",
            "1.5",
            "",
            "2147483648",
            "1k",
            " 1",
            "99999999999999999999",
        ] {
            assert!(bad("lfu-log-factor", v), "{v:?} must be refused");
        }
        assert!(check_config("stream-node-max-bytes", "9223372036854775807", None).is_ok());
    }

    #[test]
    fn words_and_events() {
        assert!(check_config("maxmemory-policy", "allkeys-lru", None).is_ok());
        assert!(bad("maxmemory-policy", "ALLKEYS-LRU"));
        assert!(bad("activedefrag", "maybe"));
        assert!(check_config("notify-keyspace-events", "", None).is_ok());
        assert!(check_config("notify-keyspace-events", "KEA", None).is_ok());
        assert!(bad("notify-keyspace-events", "Q"));
        assert!(!bad("notify-keyspace-events", "KK"));
        assert!(bad("notify-keyspace-events", &"K".repeat(16)));
    }

    #[test]
    fn unknown_keys() {
        for k in [
            "save",
            "port",
            "maxmemory",
            "dir",
            "requirepass",
            "MAXMEMORY-POLICY",
        ] {
            assert_eq!(
                check_config(k, "1", None),
                Err(ConfigError::UnknownKey),
                "{k}"
            );
        }
        assert!(ConfigError::UnknownKey.to_string().contains("timeout"));
    }
}
