//! The local stack's admin token: made once, kept in a file only its owner can read, and
//! handed to the API and the agents through their environment.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context as _;

use super::layout::{read_line, write_private_line};
use super::say;
use crate::error::Result;

/// The admin token: read from `path`, or generated (32 random bytes, hex) and written
/// with mode 600 the first time.
pub fn ensure_token(path: &Path) -> Result<String> {
    if let Some(t) = read_line(path) {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
        return Ok(t);
    }
    let token = random_hex()?;
    say(&format!("generated the admin token ({})", path.display()));
    write_private_line(path, &token)?;
    Ok(token)
}

/// A new secret: 32 random bytes from the kernel, as 64 hex digits.
pub fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_made_once_and_private() {
        let dir = std::env::temp_dir().join(format!("cachectl-token-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin-token");
        let t = ensure_token(&path).unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(ensure_token(&path).unwrap(), t);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }
}
