//! Local persistence: the last applied host config (so a host keeps serving while the API
//! is away) and atomic file writes shared with the node directories.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cacheplane_types::HostConfig;

/// Name of the saved config inside the data dir.
const CONFIG_FILE: &str = "config.json";

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file, never
/// a torn one: write a temporary file (mode `mode`), fsync it, rename it over `path`,
/// fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))?;
    Ok(())
}

/// The saved host config in one data dir.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    path: PathBuf,
}

impl ConfigStore {
    /// The store of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        ConfigStore {
            path: data_dir.join(CONFIG_FILE),
        }
    }

    /// Saves `config` atomically; the file is private since it holds auth strings.
    pub fn save(&self, config: &HostConfig) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(config)?;
        write_atomic(&self.path, &bytes, 0o600)
    }

    /// The saved config, if any. A file that cannot be read or parsed is reported as an
    /// error: the caller decides whether to go on without it.
    pub fn load(&self) -> anyhow::Result<Option<HostConfig>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("parsing {}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn saves_and_loads() {
        let dir = TempDir::new("store");
        let store = ConfigStore::new(dir.path());
        assert_eq!(store.load().expect("no file is fine"), None);
        let cfg = HostConfig {
            host: "hosts/h1".into(),
            generation: 7,
            nodes: Vec::new(),
            connectors: Vec::new(),
            memcache_nodes: Vec::new(),
            discovery_endpoints: Vec::new(),
        };
        store.save(&cfg).expect("saves");
        store.save(&cfg).expect("saves over the old file");
        assert_eq!(store.load().expect("loads"), Some(cfg));
        let mode = fs::metadata(dir.path().join(CONFIG_FILE))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("config.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = TempDir::new("store-bad");
        fs::write(dir.path().join(CONFIG_FILE), b"{not json").expect("writes");
        assert!(ConfigStore::new(dir.path()).load().is_err());
    }
}
