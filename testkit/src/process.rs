//! Built binaries, log files and processes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A binary of the workspace (`cacheplane-api`, `cacheplane-node-agent`, `cachectl`), in
/// the target directory of the running test (`target/debug/deps/<test>` →
/// `target/debug/<name>`). Panics, saying how to build it, when it is missing.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test");
    let mut dir = exe.parent().expect("the test's directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: the tests run the real binaries; build them first with \
         `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// `redis-server` on PATH. Panics when it is not installed: a test that needs it must
/// fail, never pass without running (`scripts/test.sh` installs it).
pub fn require_redis_server() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("redis-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "redis-server is not installed (not on PATH): this test runs real engines. \
                 Install it (`apt-get install redis-server`), or run `bash scripts/test.sh`, \
                 which installs it"
            )
        })
}

/// `memcached` on PATH. Panics when it is not installed: a test that needs it must fail,
/// never pass without running (`scripts/test.sh` installs it).
pub fn require_memcached() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("memcached"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "memcached is not installed (not on PATH): this test runs real engines. \
                 Install it (`apt-get install memcached`), or run `bash scripts/test.sh`, \
                 which installs it"
            )
        })
}

/// Whether `pid` is a live `memcached`.
pub fn is_memcached(pid: u32) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|prog| prog.ends_with(b"memcached"))
        })
}

/// `(node id, pid)` for every `memcache/<id>/memcached.pid` under an agent's `data_dir`
/// that names a live memcached.
pub fn memcached_pids(data_dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("memcache")) else {
        return out;
    };
    for e in entries.flatten() {
        let pid = std::fs::read_to_string(e.path().join("memcached.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|pid| is_memcached(*pid));
        if let Some(pid) = pid {
            out.push((e.file_name().to_string_lossy().into_owned(), pid));
        }
    }
    out.sort();
    out
}

/// The last `max_bytes` of `path`.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    log_tail_from(path, 0, max_bytes)
}

/// The last `max_bytes` of `path` after byte offset `from`.
pub fn log_tail_from(path: &Path, from: u64, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(max_bytes));
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether a process with this pid runs (a zombie waiting to be reaped does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Whether `pid` is a live `redis-server` (not a zombie, not a reused pid).
pub fn is_redis(pid: u32) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0 || *b == b' ')
                .next()
                .is_some_and(|prog| prog.ends_with(b"redis-server"))
        })
}

/// `(node id, pid)` for every `nodes/<id>/redis.pid` under an agent's `data_dir`.
pub fn engine_pids(data_dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("nodes")) else {
        return out;
    };
    for e in entries.flatten() {
        let pid = std::fs::read_to_string(e.path().join("redis.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = pid {
            out.push((e.file_name().to_string_lossy().into_owned(), pid));
        }
    }
    out.sort();
    out
}

/// The running `redis-server`s whose working directory is under `dir`.
pub fn redis_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .filter(|pid| is_redis(*pid))
        .collect()
}

/// SIGKILLs every engine an agent started under `data_dir` (those of the pid files, and
/// any whose pid file is not written yet or was replaced) and waits (5 s at most) until
/// they are gone, so that the next test may bind the same addresses.
pub fn kill_engines(data_dir: &Path) {
    let mut engines: Vec<u32> = engine_pids(data_dir)
        .into_iter()
        .map(|(_, pid)| pid)
        .filter(|pid| is_redis(*pid))
        .collect();
    for pid in redis_under(data_dir) {
        if !engines.contains(&pid) {
            engines.push(pid);
        }
    }
    engines.extend(memcached_pids(data_dir).into_iter().map(|(_, pid)| pid));
    for pid in &engines {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while engines.iter().any(|p| is_redis(*p) || is_memcached(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
