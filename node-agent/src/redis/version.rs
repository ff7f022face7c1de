//! The engine version a `redis-server` binary offers.

use std::path::Path;

use anyhow::Context;

/// Runs `redis-server --version` and answers the engine name to register, e.g.
/// `REDIS_7_0`.
pub async fn engine_of(redis_server: &Path) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(redis_server)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {} --version", redis_server.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text)
        .with_context(|| format!("unexpected output of redis-server --version: {text:?}"))?;
    engine_name(version).with_context(|| format!("unsupported redis-server version {version}"))
}

/// The version in `Redis server v=7.0.15 sha=… malloc=…`.
pub fn parse_version(output: &str) -> Option<&str> {
    output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .filter(|v| !v.is_empty())
}

/// `7.0.15` → `REDIS_7_0`. Versions before 7.0 are not supported: the locked-down
/// engine needs Redis 7's ACLs (docs/architecture.md#locked-down-engine).
pub fn engine_name(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    (major >= 7).then(|| format!("REDIS_{major}_{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let out = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n";
        assert_eq!(parse_version(out), Some("7.0.15"));
        assert_eq!(parse_version("nonsense"), None);
        assert_eq!(parse_version("v= x"), None);
        assert_eq!(engine_name("7.0.15").as_deref(), Some("REDIS_7_0"));
        assert_eq!(engine_name("7.2.4").as_deref(), Some("REDIS_7_2"));
        assert_eq!(engine_name("6.2.14"), None);
        assert_eq!(engine_name("6.0.0"), None);
        assert_eq!(engine_name("5.0.7"), None);
        assert_eq!(engine_name("7"), None);
        assert_eq!(engine_name("x.y"), None);
    }
}
