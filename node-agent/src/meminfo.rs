//! Host memory from `/proc/meminfo`.

/// `MemTotal` and `MemAvailable`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// All usable RAM.
    pub total_bytes: i64,
    /// RAM available to new work without swapping.
    pub available_bytes: Option<i64>,
}

/// Reads `/proc/meminfo`.
pub fn read() -> anyhow::Result<MemInfo> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    parse(&text).ok_or_else(|| anyhow::anyhow!("/proc/meminfo has no MemTotal"))
}

/// Parses `/proc/meminfo` text (`MemTotal:  16384 kB`).
pub fn parse(text: &str) -> Option<MemInfo> {
    let field = |name: &str| -> Option<i64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: i64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kb.checked_mul(1024)
        })
    };
    Some(MemInfo {
        total_bytes: field("MemTotal")?,
        available_bytes: field("MemAvailable"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let m = parse("MemTotal:       24682064 kB\nMemFree:        17271276 kB\nMemAvailable:   23924160 kB\n")
            .expect("parses");
        assert_eq!(m.total_bytes, 24_682_064 * 1024);
        assert_eq!(m.available_bytes, Some(23_924_160 * 1024));
        assert_eq!(parse("MemFree: 1 kB\n"), None);
        assert!(read().is_ok());
    }
}
