//! Reading what an engine wrote to its log since a start, to say why it failed in its
//! own words.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The log written since byte `from` (at most the last 64 KB of it).
pub fn log_since(log: &Path, from: u64) -> Option<String> {
    let mut f = fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    let from = if len < from {
        0
    } else {
        from.max(len.saturating_sub(64 * 1024))
    };
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `s` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(truncate("ééé", 3), "é…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(log_since(Path::new("/nonexistent/log"), 0), None);
    }
}
