//! The host mode: node and endpoint addresses are /32 secondary addresses on a named
//! interface of the host (as keepalived does with a VIP); engines run in the agent's
//! own namespace. The addresses the agent added are listed in `net-addresses.json`, so
//! that a restarted agent removes those it no longer needs and never one it did not add.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{dial, ip, Placement};
use crate::store::write_atomic;

/// The host mode's bookkeeping.
pub struct HostState {
    interface: String,
    file: PathBuf,
}

impl HostState {
    /// Addresses on `interface`, the list kept under `data_dir`.
    pub fn new(interface: String, data_dir: &Path) -> Self {
        HostState {
            interface,
            file: data_dir.join("net-addresses.json"),
        }
    }

    /// Adds the addresses of `nodes` missing on the interface, removes those the agent
    /// added that no node holds any more; true when all went well.
    pub async fn sync(&mut self, nodes: &[Placement]) -> bool {
        let want: BTreeSet<Ipv4Addr> = nodes.iter().flat_map(Placement::addresses).collect();
        let mut added: BTreeSet<Ipv4Addr> = std::fs::read(&self.file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let have = match ip::addresses(None, &self.interface).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(interface = %self.interface, error = %format!("{e:#}"), "cannot read the interface's addresses");
                return false;
            }
        };
        let mut ok = true;
        for a in want.iter().filter(|a| !have.contains(&(**a, 32))) {
            added.insert(*a);
            if !self.save(&added) {
                return false;
            }
            let cidr = format!("{a}/32");
            match ip::ip(None, &["addr", "add", &cidr, "dev", &self.interface]).await {
                Ok(_) => {
                    tracing::info!(interface = %self.interface, address = %a, "address added");
                    let mut arp = Command::new("arping");
                    arp.args(["-U", "-c", "2", "-I", &self.interface, &a.to_string()]);
                    dial::spawn_detached_in(None, arp);
                }
                Err(e) => {
                    tracing::warn!(address = %a, error = %format!("{e:#}"), "cannot add address; will retry");
                    ok = false;
                }
            }
        }
        for a in added.clone().iter().filter(|a| !want.contains(a)) {
            if have.contains(&(*a, 32)) {
                let cidr = format!("{a}/32");
                if let Err(e) = ip::ip(None, &["addr", "del", &cidr, "dev", &self.interface]).await
                {
                    tracing::warn!(address = %a, error = %format!("{e:#}"), "cannot remove address; will retry");
                    ok = false;
                    continue;
                }
                tracing::info!(interface = %self.interface, address = %a, "address removed");
            }
            added.remove(a);
            ok &= self.save(&added);
        }
        ok
    }

    fn save(&self, added: &BTreeSet<Ipv4Addr>) -> bool {
        let r = serde_json::to_vec(added)
            .map_err(anyhow::Error::from)
            .and_then(|b| write_atomic(&self.file, &b, 0o600));
        if let Err(e) = &r {
            tracing::warn!(error = %format!("{e:#}"), "cannot save the list of addresses");
        }
        r.is_ok()
    }
}
