//! The engine a `memcached` binary offers.

use std::path::Path;

/// The engine name the API places Memcached nodes by.
pub const MEMCACHE_1_6: &str = "MEMCACHE_1_6";

/// What discovery endpoints answer to `version` on a host without memcached (they are
/// served by the agent itself, whatever runs there).
pub const DEFAULT_VERSION: &str = "1.6.18";

/// A memcached binary the agent can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memcached {
    /// The engine to register, e.g. `MEMCACHE_1_6`.
    pub engine: String,
    /// Its full version, e.g. `1.6.18`.
    pub version: String,
}

/// Runs `memcached -V`; `None` (logged) when the binary is missing or unsupported: the
/// agent then runs no Memcached nodes and does not register the engine.
pub async fn probe(memcached: &Path) -> Option<Memcached> {
    let out = tokio::process::Command::new(memcached)
        .arg("-V")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(memcached = %memcached.display(), error = %e, "no memcached: Memcached nodes cannot run here");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let found = parse_version(&text).and_then(|v| {
        Some(Memcached {
            engine: engine_name(v)?,
            version: v.to_string(),
        })
    });
    if found.is_none() {
        tracing::warn!(memcached = %memcached.display(), output = %text.trim(), "unsupported memcached: Memcached nodes cannot run here");
    }
    found
}

/// The version in `memcached 1.6.18`.
pub fn parse_version(output: &str) -> Option<&str> {
    let mut words = output.split_whitespace();
    (words.next()? == "memcached").then_some(())?;
    words.next().filter(|v| v.contains('.'))
}

/// `1.6.18` → `MEMCACHE_1_6`; only 1.6 is supported (the flags the agent passes are
/// 1.6's).
pub fn engine_name(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    (major == 1 && minor == 6).then(|| format!("MEMCACHE_{major}_{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("memcached 1.6.18\n"), Some("1.6.18"));
        assert_eq!(parse_version("Redis server v=7.0.15"), None);
        assert_eq!(parse_version(""), None);
        assert_eq!(engine_name("1.6.18").as_deref(), Some(MEMCACHE_1_6));
        assert_eq!(engine_name("1.5.22"), None);
        assert_eq!(engine_name("x"), None);
    }
}
