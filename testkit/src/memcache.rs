//! A small Memcached client for the tests, speaking the real text protocol: it reads an
//! instance's node list from its discovery endpoint (`config get cluster`, as
//! ElastiCache's and Memorystore's auto-discovery clients do) and shards keys over the
//! nodes with a ketama-style consistent hash ring, so that adding nodes moves only the
//! keys the new nodes take over.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Points each server gets on the ring (ketama's 160: 40 digests of 4 points).
pub const POINTS_PER_SERVER: usize = 160;

/// What `config get cluster` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The config version: grows with every change of the node list.
    pub version: i64,
    /// The nodes, `ip:port`, in the answer's order.
    pub nodes: Vec<String>,
}

/// One connection to a memcached (or a discovery endpoint).
pub struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr` (`ip:port`).
    pub async fn connect(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            io: BufReader::new(s),
        })
    }

    async fn line(&mut self) -> std::io::Result<String> {
        let mut l = String::new();
        if self.io.read_line(&mut l).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.get_mut().write_all(bytes).await
    }

    /// `config get cluster`: the version and the nodes.
    pub async fn config_get_cluster(&mut self) -> std::io::Result<Cluster> {
        self.send(b"config get cluster\r\n").await?;
        let head = self.line().await?;
        let len: usize = head
            .strip_prefix("CONFIG cluster 0 ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(format!("not a CONFIG answer: {head:?}")))?;
        let mut payload = vec![0; len + 2];
        self.io.read_exact(&mut payload).await?;
        let end = self.line().await?;
        if end != "END" {
            return Err(bad(format!("no END after the payload: {end:?}")));
        }
        let text = String::from_utf8_lossy(&payload[..len]).to_string();
        let mut lines = text.lines();
        let version = lines
            .next()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad(format!("no version in {text:?}")))?;
        let nodes = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| {
                let parts: Vec<&str> = n.split('|').collect();
                match parts[..] {
                    [_, ip, port] => Ok(format!("{ip}:{port}")),
                    _ => Err(bad(format!("not host|ip|port: {n:?}"))),
                }
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Cluster { version, nodes })
    }

    /// `set KEY 0 0 LEN`; true when STORED.
    pub async fn set(&mut self, key: &str, value: &str) -> std::io::Result<bool> {
        let cmd = format!("set {key} 0 0 {}\r\n{value}\r\n", value.len());
        self.send(cmd.as_bytes()).await?;
        Ok(self.line().await? == "STORED")
    }

    /// `get KEY`: the value, `None` on a miss.
    pub async fn get(&mut self, key: &str) -> std::io::Result<Option<String>> {
        self.send(format!("get {key}\r\n").as_bytes()).await?;
        let head = self.line().await?;
        if head == "END" {
            return Ok(None);
        }
        let len: usize = head
            .split_whitespace()
            .nth(3)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(format!("not a VALUE line: {head:?}")))?;
        let mut value = vec![0; len + 2];
        self.io.read_exact(&mut value).await?;
        let end = self.line().await?;
        if end != "END" {
            return Err(bad(format!("no END after the value: {end:?}")));
        }
        Ok(Some(String::from_utf8_lossy(&value[..len]).to_string()))
    }

    /// `stats settings`, by name (e.g. `idle_timeout`).
    pub async fn stats_settings(&mut self) -> std::io::Result<BTreeMap<String, String>> {
        self.send(b"stats settings\r\n").await?;
        let mut out = BTreeMap::new();
        loop {
            let l = self.line().await?;
            if l == "END" {
                return Ok(out);
            }
            let mut parts = l.splitn(3, ' ');
            if let (Some("STAT"), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Reads an instance's cluster from its discovery endpoint (`ip:port`).
pub async fn discover(endpoint: &str) -> std::io::Result<Cluster> {
    Conn::connect(endpoint).await?.config_get_cluster().await
}

fn point(bytes: &[u8]) -> u32 {
    let d = Sha256::digest(bytes);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A ketama-style consistent hash ring over servers (`ip:port`).
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<(u32, usize)>,
    servers: Vec<String>,
}

impl Ring {
    /// The ring of `servers`, [`POINTS_PER_SERVER`] points each.
    pub fn new(servers: &[String]) -> Ring {
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER);
        for (i, s) in servers.iter().enumerate() {
            for d in 0..POINTS_PER_SERVER / 4 {
                let digest = Sha256::digest(format!("{s}-{d}").as_bytes());
                for c in digest[..16].chunks(4) {
                    points.push((u32::from_be_bytes([c[0], c[1], c[2], c[3]]), i));
                }
            }
        }
        points.sort_unstable();
        Ring {
            points,
            servers: servers.to_vec(),
        }
    }

    /// The server that holds `key`: the first point at or after the key's hash.
    pub fn server(&self, key: &str) -> &str {
        let h = point(key.as_bytes());
        let i = self.points.partition_point(|(p, _)| *p < h) % self.points.len();
        &self.servers[self.points[i].1]
    }
}

/// A client sharding keys over an instance's nodes through a [`Ring`], one connection
/// per node.
pub struct Sharded {
    /// The ring.
    pub ring: Ring,
    conns: HashMap<String, Conn>,
}

impl Sharded {
    /// Connects to every node of `cluster`.
    pub async fn connect(cluster: &Cluster) -> std::io::Result<Sharded> {
        let mut conns = HashMap::new();
        for n in &cluster.nodes {
            conns.insert(n.clone(), Conn::connect(n).await?);
        }
        Ok(Sharded {
            ring: Ring::new(&cluster.nodes),
            conns,
        })
    }

    fn conn(&mut self, key: &str) -> &mut Conn {
        let server = self.ring.server(key).to_string();
        self.conns
            .get_mut(&server)
            .expect("a connection per ring server")
    }

    /// Sets `key` on its node; true when stored.
    pub async fn set(&mut self, key: &str, value: &str) -> std::io::Result<bool> {
        self.conn(key).set(key, value).await
    }

    /// Gets `key` from its node.
    pub async fn get(&mut self, key: &str) -> std::io::Result<Option<String>> {
        self.conn(key).get(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_servers_moves_about_the_share_they_take() {
        let three: Vec<String> = (2..5).map(|i| format!("10.0.0.{i}:11211")).collect();
        let five: Vec<String> = (2..7).map(|i| format!("10.0.0.{i}:11211")).collect();
        let (a, b) = (Ring::new(&three), Ring::new(&five));
        let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
        let moved = keys.iter().filter(|k| a.server(k) != b.server(k)).count();
        assert!((3000..=4800).contains(&moved), "{moved} of 10000 moved");
        assert!(keys
            .iter()
            .filter(|k| a.server(k) != b.server(k))
            .all(|k| !three.contains(&b.server(k).to_string())));
    }
}
