//! The configuration file: the last place settings come from, after flags and the
//! environment. `$CACHECTL_CONFIG`, or `config.toml` in `$XDG_CONFIG_HOME/cachectl`
//! (`~/.config/cachectl`):
//!
//! ```toml
//! api_url = "http://127.0.0.1:8080"
//! token = "…"
//! project = "my-project"
//! region = "local"
//! ```
//!
//! It holds a token, so it is written with mode 600.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The settings the file can hold; any may be missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Base URL of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Default project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Default region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The keys `cachectl config set` accepts (`api-url` and `api_url` alike).
pub const KEYS: &[&str] = &["api-url", "token", "project", "region"];

impl FileConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("reading {}", path.display()))
                    .into())
            }
        };
        toml::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is not a valid cachectl configuration: {e}",
                path.display()
            ))
        })
    }

    /// Writes the file (and its directory), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = toml::to_string(self).context("encoding the configuration")?;
        // Written next to the target and renamed, so a crash never leaves half a file.
        let tmp = path.with_extension("toml.tmp");
        write_private(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The value slot of a key, or a usage error naming the valid keys.
    pub fn slot(&mut self, key: &str) -> Result<&mut Option<String>> {
        Ok(match key.replace('_', "-").as_str() {
            "api-url" => &mut self.api_url,
            "token" => &mut self.token,
            "project" => &mut self.project,
            "region" => &mut self.region,
            _ => {
                return Err(Error::Usage(format!(
                    "unknown key '{key}'; keys: {}",
                    KEYS.join(", ")
                )))
            }
        })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Where the configuration file is: `explicit` (`--config`/`CACHECTL_CONFIG`), else
/// `$XDG_CONFIG_HOME/cachectl/config.toml`, else `~/.config/cachectl/config.toml`.
pub fn path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let base = match (non_empty("XDG_CONFIG_HOME"), non_empty("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => PathBuf::from(home).join(".config"),
        (None, None) => {
            return Err(Error::Usage(
                "cannot find the configuration directory: neither XDG_CONFIG_HOME nor HOME \
                 is set; pass --config PATH"
                    .into(),
            ))
        }
    };
    Ok(base.join("cachectl").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_keys() {
        let dir = std::env::temp_dir().join(format!("cachectl-config-{}", std::process::id()));
        let path = dir.join("sub").join("config.toml");
        assert_eq!(FileConfig::load(&path).unwrap(), FileConfig::default());
        let mut c = FileConfig::default();
        *c.slot("api_url").unwrap() = Some("http://127.0.0.1:9".into());
        *c.slot("region").unwrap() = Some("local".into());
        assert!(matches!(c.slot("zone"), Err(Error::Usage(_))));
        c.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("api_url = \"http://127.0.0.1:9\""), "{text}");
        assert_eq!(FileConfig::load(&path).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "colour = 1\n").unwrap();
        assert!(matches!(FileConfig::load(&path), Err(Error::Usage(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
