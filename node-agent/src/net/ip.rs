//! The `ip` (iproute2) commands the agent runs, each answering its output or an error
//! quoting the command and what it printed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::Context;

use super::dial;

/// Runs `ip ARGS` (in namespace `ns` with `-n`), answering its standard output.
pub async fn ip(ns: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let mut all: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        all.extend(["-n", ns]);
    }
    all.extend(args);
    run("ip", &all, None, None).await
}

/// Runs `program ARGS` in namespace `ns` (here for `None`), with `stdin`.
pub async fn run(
    program: &str,
    args: &[&str],
    ns: Option<&str>,
    stdin: Option<Vec<u8>>,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = dial::output_in(ns, cmd, stdin)
        .await
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether link `name` exists (in namespace `ns`).
pub async fn link_exists(ns: Option<&str>, name: &str) -> bool {
    ip(ns, &["link", "show", "dev", name]).await.is_ok()
}

/// Deletes link `name` if it exists.
pub async fn delete_link(ns: Option<&str>, name: &str) -> anyhow::Result<()> {
    if link_exists(ns, name).await {
        ip(ns, &["link", "del", "dev", name]).await?;
    }
    Ok(())
}

/// The IPv4 addresses on `dev` (in namespace `ns`), with their prefix lengths.
pub async fn addresses(ns: Option<&str>, dev: &str) -> anyhow::Result<BTreeSet<(Ipv4Addr, u8)>> {
    let out = ip(ns, &["-o", "-4", "addr", "show", "dev", dev]).await?;
    Ok(parse_addresses(&out))
}

/// `ip -o -4 addr show` lines: `2: eth0    inet 10.0.0.3/16 brd … scope global eth0 …`.
pub fn parse_addresses(out: &str) -> BTreeSet<(Ipv4Addr, u8)> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            super::parse_cidr(words.next()?)
        })
        .collect()
}

/// Named namespaces (`ip netns list`), names only.
pub async fn namespaces() -> anyhow::Result<Vec<String>> {
    let out = ip(None, &["netns", "list"]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Creates named namespace `ns` unless it exists, with `lo` up.
pub async fn ensure_netns(ns: &str) -> anyhow::Result<()> {
    if !dial::netns_path(ns).exists() {
        if let Err(e) = ip(None, &["netns", "add", ns]).await {
            if !dial::netns_path(ns).exists() {
                return Err(e);
            }
        }
    }
    ip(Some(ns), &["link", "set", "dev", "lo", "up"]).await?;
    Ok(())
}

/// Deletes named namespace `ns` if it exists: its interfaces (and their veth peers) go
/// with it, and so does every connection through them.
pub async fn delete_netns(ns: &str) -> anyhow::Result<()> {
    if dial::netns_path(ns).exists() {
        ip(None, &["netns", "del", ns]).await?;
    }
    Ok(())
}

/// Interfaces enslaved to bridge `br`.
pub async fn bridge_ports(br: &str) -> anyhow::Result<usize> {
    let out = ip(None, &["-o", "link", "show", "master", br]).await?;
    Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_ip_output() {
        let out = "2: eth0    inet 10.128.0.3/16 brd 10.128.255.255 scope global eth0\\       valid_lft forever preferred_lft forever\n2: eth0    inet 10.128.0.17/16 scope global secondary eth0\\       valid_lft forever preferred_lft forever\n";
        let got = parse_addresses(out);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(Ipv4Addr::new(10, 128, 0, 17), 16)));
        assert!(parse_addresses("").is_empty());
    }
}
