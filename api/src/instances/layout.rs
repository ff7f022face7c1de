//! Where things sit inside an instance's range: the network address, then the primary
//! endpoint, the read endpoint, and the nodes.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use crate::db::instances::InstanceRow;

/// Offset of the primary endpoint inside an instance's range.
pub const PRIMARY_ENDPOINT_OFFSET: u32 = 1;
/// Offset of the read endpoint.
pub const READ_ENDPOINT_OFFSET: u32 = 2;
/// Offset of the first node address.
pub const FIRST_NODE_OFFSET: u32 = 3;

/// The address `n` places into `range`.
pub fn offset(range: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()) + n)
}

impl InstanceRow {
    /// The range holding the endpoints and nodes.
    pub fn range(&self) -> Option<Ipv4Net> {
        match self.primary_range {
            Some(IpNet::V4(n)) => Some(n),
            _ => None,
        }
    }

    /// The primary endpoint address: the first usable address of the range.
    pub fn endpoint(&self) -> Option<Ipv4Addr> {
        self.range().map(|r| offset(r, PRIMARY_ENDPOINT_OFFSET))
    }

    /// The read endpoint address, when read replicas are enabled.
    pub fn read_endpoint(&self) -> Option<Ipv4Addr> {
        self.range()
            .filter(|_| self.read_replicas_enabled)
            .map(|r| offset(r, READ_ENDPOINT_OFFSET))
    }
}
