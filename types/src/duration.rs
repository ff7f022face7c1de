//! Durations as people write them in flags and query parameters: `250ms`, `30s`, `2m`,
//! `1h`, or a bare number of seconds. Shared so the API, the agent and the CLI accept the
//! same spellings.

use std::time::Duration;

/// The longest duration accepted: a day.
pub const MAX_DURATION_SECS: f64 = 86_400.0;

/// Parses `250ms`, `30s`, `2m`, `1h` or a bare number of seconds (fractions allowed),
/// from 0 to 24 h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 500ms, 30s, 2m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{s}': the unit must be ms, s, m or h")),
    };
    if !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!("'{s}' is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "x",
            "5d",
            "-1s",
            "25h",
            "nan",
            "1e400s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
