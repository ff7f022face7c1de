//! What the tests of the netns network mode share: whether they can run here (root,
//! `ip`, `nft`, `redis-cli`), a guard that deletes every namespace and link a test made,
//! and clients run inside a namespace.

use std::process::Command;
use std::sync::Mutex;

/// Whether a netns test can run: root, and `ip`, `nft` and `redis-cli` installed. Under
/// CI (`CI=true`) a test that cannot run fails: this panics saying what is missing.
/// Elsewhere it prints why and answers false, and the test returns.
pub fn can_run() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let missing: Vec<&str> = ["ip", "nft", "redis-cli"]
        .into_iter()
        .filter(|t| {
            Command::new(t)
                .arg(if *t == "redis-cli" { "-v" } else { "-V" })
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = format!("netns tests need root (root: {root}) and these tools: missing {missing:?}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Deletes every namespace and link whose name starts with the test's prefix (the
/// agents' `--netns-prefix`), and the namespaces [`NetGuard::adopt`]ed, when created
/// (leftovers of an earlier run of the same pid) and when dropped, pass or fail.
pub struct NetGuard {
    /// The prefix: `t`, the tag, and the test process's pid in base 36 (6 characters at
    /// most, the agent's limit).
    pub prefix: String,
    adopted: Mutex<Vec<String>>,
}

impl NetGuard {
    /// A guard for prefix `t{tag}{pid}`; `tag` tells the tests of one process apart.
    pub fn new(tag: u32) -> Self {
        let mut n = std::process::id();
        let mut pid = String::new();
        for _ in 0..4 {
            pid.push(char::from_digit(n % 36, 36).unwrap_or('0'));
            n /= 36;
        }
        let guard = NetGuard {
            prefix: format!("t{tag}{pid}"),
            adopted: Mutex::new(Vec::new()),
        };
        guard.clean();
        guard
    }

    /// Deletes namespace `ns` too when the guard goes, though it lacks the prefix (e.g.
    /// a connector's namespace, named by the API).
    pub fn adopt(&self, ns: &str) {
        if let Ok(mut a) = self.adopted.lock() {
            a.push(ns.to_string());
        }
    }

    /// Deletes the guard's namespaces and links now.
    pub fn clean(&self) {
        let adopted = self.adopted.lock().map(|a| a.clone()).unwrap_or_default();
        for ns in namespaces() {
            if ns.starts_with(&self.prefix) || adopted.contains(&ns) {
                let _ = Command::new("ip")
                    .args(["-n", &ns, "link", "del", "eth0"])
                    .output();
                let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            }
        }
        let out = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for name in out
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        {
            if name.starts_with(&self.prefix) {
                let _ = Command::new("ip").args(["link", "del", &name]).output();
            }
        }
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        self.clean();
    }
}

/// The names of the machine's network namespaces (`ip netns list`).
pub fn namespaces() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Where a client runs: the caller's namespace, a named one (`ip netns exec`), or the
/// one of a process (`nsenter --net=/proc/PID/ns/net`), which lives on as long as a
/// process is in it even after its name was deleted.
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// The caller's namespace.
    Here,
    /// A named namespace.
    Netns(&'a str),
    /// The namespace process `pid` is in.
    Process(u32),
}

impl At<'_> {
    /// `program ARGS…` run there, with `timeout SECS` in front.
    fn command(self, secs: u32, program: &str) -> Command {
        let mut cmd = match self {
            At::Here => Command::new("timeout"),
            At::Netns(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "timeout"]);
                c
            }
            At::Process(pid) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/proc/{pid}/ns/net")).arg("timeout");
                c
            }
        };
        cmd.arg(secs.to_string()).arg(program);
        cmd
    }
}

/// `redis-cli -h host -p port ARGS…` (authenticated with `auth`, 5 s at most), inside
/// namespace `ns` or, with `None`, in the caller's: its output, or why it failed (no
/// connection, a refused login, an error reply, a namespace that is gone).
pub fn cli_in(
    ns: Option<&str>,
    host: &str,
    port: u16,
    auth: &str,
    args: &[&str],
) -> Result<String, String> {
    cli_at(ns.map_or(At::Here, At::Netns), host, port, auth, args)
}

/// [`cli_in`] run [`At`] any place.
pub fn cli_at(at: At, host: &str, port: u16, auth: &str, args: &[&str]) -> Result<String, String> {
    let out = at
        .command(5, "redis-cli")
        .arg("--no-auth-warning")
        .args(["-h", host, "-p", &port.to_string(), "-a", auth])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let refused = ["ERR", "NOAUTH", "WRONGPASS", "Could not connect"]
        .iter()
        .any(|e| text.starts_with(e));
    if out.status.success() && !refused {
        Ok(text)
    } else {
        Err(format!(
            "{text} {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

/// Whether a TCP connection to `host:port` opens from `at` within 2 s (bash's
/// `/dev/tcp`).
pub fn tcp_opens_at(at: At, host: &str, port: u16) -> bool {
    at.command(2, "bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/{host}/{port}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether a TCP connection to `host:port` opens from namespace `ns` within 2 s.
pub fn tcp_opens(ns: &str, host: &str, port: u16) -> bool {
    tcp_opens_at(At::Netns(ns), host, port)
}

/// A process (`sleep`) that stays in a namespace, as an app would; killed when dropped.
pub struct Resident(std::process::Child);

impl Resident {
    /// Starts it in namespace `ns`.
    pub fn start(ns: &str) -> std::io::Result<Resident> {
        Command::new("ip")
            .args(["netns", "exec", ns, "sleep", "600"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .map(Resident)
    }

    /// Where it is, for [`cli_at`] and [`tcp_opens_at`].
    pub fn at(&self) -> At<'static> {
        At::Process(self.0.id())
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
