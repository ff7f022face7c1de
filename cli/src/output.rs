//! Output: tables for people, JSON and YAML for scripts. JSON and YAML are the API's own
//! camelCase resources (lists as arrays of them), so they stay stable whatever the tables
//! show.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use crate::error::Result;

/// How a command prints what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The API's JSON, pretty-printed.
    Json,
    /// The same as YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML, or as the text `table` makes of it.
pub fn emit<T: Serialize + ?Sized>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<()> {
    let text = match format {
        Format::Table => table(value),
        Format::Json => serde_json::to_string_pretty(value).context("encoding JSON")?,
        Format::Yaml => serde_norway::to_string(value).context("encoding YAML")?,
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`cachectl … | head`) is not an error worth reporting.
    let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
    Ok(())
}

/// A table with one header row and one row per item.
pub fn rows(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    for r in rows {
        t.add_row(r);
    }
    trim_lines(&t.to_string())
}

/// A two-column table of `key  value` lines, skipping empty values.
pub fn fields(pairs: impl IntoIterator<Item = (&'static str, String)>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (k, v) in pairs {
        if !v.is_empty() {
            t.add_row(vec![format!("{k}:"), v]);
        }
    }
    trim_lines(&t.to_string())
}

/// comfy-table pads every cell with a space: drop the leading one and trailing blanks so
/// the output starts at column 0 like other CLIs' tables.
fn trim_lines(s: &str) -> String {
    s.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `2026-11-23T15:20:00Z`.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `a=1,b=2`.
pub fn map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The last segment of a resource name (`projects/p/…/instances/x` → `x`).
pub fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The wire name of a unit enum (`STANDARD_HA`), as the JSON shows it.
pub fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `v` as the shell reads it back: as is when it holds only characters the shell takes
/// literally, else in single quotes. An empty value stays empty (as in `REDISAUTH=`).
pub fn shell_quote(v: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:/@%+,".contains(c);
    if v.chars().all(plain) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use cacheplane_types::Tier;

    use super::*;

    #[test]
    fn tables_start_at_column_zero() {
        let t = rows(
            &["NAME", "STATE"],
            [
                vec!["a".into(), "READY".into()],
                vec!["bb".into(), "".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(lines[1].starts_with("a "), "{t}");
        assert_eq!(lines[2], "bb");
        let f = fields([("name", "x".into()), ("empty", String::new())]);
        assert_eq!(f, "name:  x");
    }

    #[test]
    fn small_helpers() {
        assert_eq!(short("projects/p/locations/r/instances/x"), "x");
        assert_eq!(wire(&Tier::StandardHa), "STANDARD_HA");
        let m = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        assert_eq!(map(&m), "a=1,b=2");
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("127.64.0.1"), "127.64.0.1");
        assert_eq!(shell_quote(""), "");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$x"), "'$x'");
    }
}
