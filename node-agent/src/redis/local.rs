//! How the agent reaches the engines of its own host: over each engine's Unix socket
//! (`unixsocket` in its redis.conf, mode 0700, so only the agent's user can open it).
//! The socket works wherever the engine's TCP addresses live (in a network namespace the
//! agent is not in, on a TLS-only port) and no tenant can reach it. An engine started by
//! an agent that did not configure the socket yet is reached over TCP at its node
//! address instead. Engines of other hosts (a replica's primary, the replicas behind a
//! read endpoint) are reached over the network as before.

use cacheplane_types::NodeSpec;

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::client::{Client, ClientError};
use super::{conf, NodeDir};

/// Connects to the engine of the node in `dir`, running `spec`, and authenticates with
/// `auth`.
pub async fn connect(
    dir: &NodeDir,
    spec: &NodeSpec,
    auth: Option<&str>,
) -> Result<Client, ClientError> {
    let socket = dir.socket();
    if socket.exists() {
        match connect_socket(dir, auth).await {
            // The file of an engine that is gone, or of one that cannot take connections.
            Err(ClientError::Io(_)) => {}
            r => return r,
        }
    }
    super::tls::connect(&spec.address, spec.port, super::tls::ca_of(spec), auth).await
}

/// Longest Unix socket path `connect(2)` takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Connects to the engine's socket. A path too long for `sun_path` (a deep data
/// directory) is reached through `/proc/self/fd/N/redis.sock`, N an open descriptor of
/// the node directory, which the kernel resolves to the same file.
async fn connect_socket(dir: &NodeDir, auth: Option<&str>) -> Result<Client, ClientError> {
    let socket = dir.socket();
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return Client::connect_unix(&socket, auth).await;
    }
    let held = std::fs::File::open(&dir.dir)?;
    let short = PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        held.as_raw_fd(),
        conf::SOCKET_FILE
    ));
    let client = Client::connect_unix(&short, auth).await;
    drop(held);
    client
}
