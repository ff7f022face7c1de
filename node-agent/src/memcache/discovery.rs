//! Memcached auto discovery: for each [`DiscoveryEndpointSpec`] of the host config, the
//! agent listens on the endpoint's address and port (in its network's namespace) and
//! answers the text command `config get cluster` as ElastiCache and Memorystore do:
//!
//! ```text
//! CONFIG cluster 0 <bytes>\r\n
//! <version>\n
//! <host>|<ip>|<port> <host>|<ip>|<port> …\n
//! \r\n
//! END\r\n
//! ```
//!
//! where `<bytes>` is the length of `<version>\n<node list>\n`. Also answered: the older
//! clients' `get AmazonElastiCache:cluster` (the same payload as a `VALUE`), `version`
//! (cluster clients ask it first to choose the command), and `quit`; anything else is
//! `ERROR`. A connection may send any number of commands. A new node list or version
//! is seen by the next command, on connections already open too, without the listener
//! closing; an endpoint no longer in the config stops listening and its connections
//! close, so that its address can go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cacheplane_types::DiscoveryEndpointSpec;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use crate::net::Net;

/// The key old clients read the cluster config from.
pub const LEGACY_KEY: &str = "AmazonElastiCache:cluster";
/// Longest command line: memcached's own limit for a key command is about this.
const MAX_LINE: usize = 2048;
/// A connection that sends nothing this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most connections one endpoint serves at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 1024;
/// Listen backlog.
const BACKLOG: u32 = 1024;

/// `<version>\n<host>|<ip>|<port> …\n`: what `<bytes>` counts.
pub fn payload(spec: &DiscoveryEndpointSpec) -> String {
    let nodes: Vec<String> = spec
        .nodes
        .iter()
        .map(|n| format!("{}|{}|{}", n.host, n.ip, n.port))
        .collect();
    format!("{}\n{}\n", spec.config_version, nodes.join(" "))
}

/// The whole answer to `config get cluster`.
pub fn config_answer(spec: &DiscoveryEndpointSpec) -> Vec<u8> {
    let p = payload(spec);
    format!("CONFIG cluster 0 {}\r\n{p}\r\nEND\r\n", p.len()).into_bytes()
}

/// The whole answer to `get AmazonElastiCache:cluster`.
pub fn legacy_answer(spec: &DiscoveryEndpointSpec) -> Vec<u8> {
    let p = payload(spec);
    format!("VALUE {LEGACY_KEY} 0 {}\r\n{p}\r\nEND\r\n", p.len()).into_bytes()
}

/// An endpoint's answers, rendered once per change of its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    config: Vec<u8>,
    legacy: Vec<u8>,
    version: Vec<u8>,
}

impl Answers {
    /// The answers of `spec`; `version` is what `version` answers (memcached's).
    pub fn of(spec: &DiscoveryEndpointSpec, version: &str) -> Self {
        Answers {
            config: config_answer(spec),
            legacy: legacy_answer(spec),
            version: format!("VERSION {version}\r\n").into_bytes(),
        }
    }
}

/// What to do with one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Close the connection.
    Close,
}

/// The reply to command `line` (without its line end).
pub fn reply(line: &str, answers: &Answers) -> Reply {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    match words.as_slice() {
        ["config", "get", "cluster"] => Reply::Send(answers.config.clone()),
        ["get", key] if *key == LEGACY_KEY => Reply::Send(answers.legacy.clone()),
        ["version"] => Reply::Send(answers.version.clone()),
        ["quit"] => Reply::Close,
        _ => Reply::Send(b"ERROR\r\n".to_vec()),
    }
}

/// Serves one connection: one reply per command line, until `quit`, EOF, an error, a
/// line too long or [`IDLE_TIMEOUT`] of silence.
async fn serve(stream: TcpStream, answers: watch::Receiver<Arc<Answers>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut read)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        match got {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        if line.last() != Some(&b'\n') {
            let _ = write.write_all(b"CLIENT_ERROR line too long\r\n").await;
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let current = answers.borrow().clone();
        match reply(text, &current) {
            Reply::Send(bytes) => {
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Close => return,
        }
    }
}

/// Accepts connections until aborted; aborting it ends its connections too.
async fn accept_loop(listener: TcpListener, answers: watch::Receiver<Arc<Answers>>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let answers = answers.clone();
                    conns.spawn(async move {
                        serve(stream, answers).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "discovery endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Where an endpoint listens: its namespace, address and port.
type Key = (Option<String>, String, u16);

/// One endpoint being served.
struct Served {
    instance: String,
    answers: watch::Sender<Arc<Answers>>,
    task: AbortHandle,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The discovery endpoints this agent serves.
pub struct DiscoveryEndpoints {
    net: Net,
    /// What `version` answers.
    version: String,
    served: BTreeMap<Key, Served>,
    /// The last bind error per endpoint, so that a retry every pass logs once.
    bind_errors: BTreeMap<Key, String>,
}

impl DiscoveryEndpoints {
    /// None yet; listeners are made in `net`'s namespaces, `version` is what `version`
    /// answers.
    pub fn new(net: Net, version: impl Into<String>) -> Self {
        DiscoveryEndpoints {
            net,
            version: version.into(),
            served: BTreeMap::new(),
            bind_errors: BTreeMap::new(),
        }
    }

    /// Serves exactly `specs`: new answers for the endpoints already listening, a
    /// listener for each new one (a bind that fails is logged and tried again on the
    /// next call), and no more listener for the others. Must be called within the
    /// runtime that serves them.
    pub fn update(&mut self, specs: &[DiscoveryEndpointSpec]) {
        let mut keep = Vec::new();
        for spec in specs {
            let key: Key = (
                self.net.netns_for(spec.network.as_ref()),
                spec.address.clone(),
                spec.port,
            );
            keep.push(key.clone());
            let answers = Arc::new(Answers::of(spec, &self.version));
            if let Some(s) = self.served.get_mut(&key) {
                s.instance.clone_from(&spec.instance);
                s.answers.send_if_modified(|old| {
                    let changed = **old != *answers;
                    if changed {
                        tracing::info!(instance = %spec.instance, version = spec.config_version, nodes = spec.nodes.len(), "discovery endpoint answers a new cluster config");
                        *old = answers.clone();
                    }
                    changed
                });
                continue;
            }
            match self.listen(spec) {
                Ok(listener) => {
                    self.bind_errors.remove(&key);
                    let (tx, rx) = watch::channel(answers);
                    let task = tokio::spawn(accept_loop(listener, rx)).abort_handle();
                    tracing::info!(instance = %spec.instance, address = %spec.address, port = spec.port, version = spec.config_version, "discovery endpoint listening");
                    self.served.insert(
                        key,
                        Served {
                            instance: spec.instance.clone(),
                            answers: tx,
                            task,
                        },
                    );
                }
                Err(e) => {
                    let e = e.to_string();
                    if self.bind_errors.get(&key) != Some(&e) {
                        tracing::warn!(instance = %spec.instance, address = %spec.address, port = spec.port, error = %e, "discovery endpoint cannot listen; will retry");
                        self.bind_errors.insert(key, e);
                    }
                }
            }
        }
        self.served.retain(|key, s| {
            let wanted = keep.contains(key);
            if !wanted {
                tracing::info!(instance = %s.instance, address = %key.1, port = key.2, "discovery endpoint stopped");
            }
            wanted
        });
        self.bind_errors.retain(|key, _| keep.contains(key));
    }

    fn listen(&self, spec: &DiscoveryEndpointSpec) -> std::io::Result<TcpListener> {
        let ip = spec.address.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("'{}' is not an IP address", spec.address),
            )
        })?;
        self.net
            .dialer_for(spec.network.as_ref())
            .listener(SocketAddr::new(ip, spec.port), BACKLOG)
    }

    /// `(instance, address, port)` of every endpoint listening now.
    pub fn listening(&self) -> Vec<(String, String, u16)> {
        self.served
            .iter()
            .map(|((_, a, p), s)| (s.instance.clone(), a.clone(), *p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use cacheplane_types::DiscoveryNode;

    use super::*;

    fn spec(version: i64, nodes: &[(&str, &str)]) -> DiscoveryEndpointSpec {
        DiscoveryEndpointSpec {
            instance: "projects/p/locations/r/memcacheInstances/m".into(),
            address: "127.79.0.1".into(),
            port: 11211,
            config_version: version,
            nodes: nodes
                .iter()
                .map(|(h, ip)| DiscoveryNode {
                    host: h.to_string(),
                    ip: ip.to_string(),
                    port: 11211,
                })
                .collect(),
            network: None,
        }
    }

    #[test]
    fn config_get_cluster_is_answered_byte_for_byte() {
        let s = spec(
            12,
            &[
                ("node-1.m.local", "10.0.0.2"),
                ("node-2.m.local", "10.0.0.3"),
            ],
        );
        // "12\n" (3) + "node-1.m.local|10.0.0.2|11211 node-2.m.local|10.0.0.3|11211" (59)
        // + "\n" (1) = 63.
        let want = b"CONFIG cluster 0 63\r\n12\nnode-1.m.local|10.0.0.2|11211 node-2.m.local|10.0.0.3|11211\n\r\nEND\r\n";
        assert_eq!(config_answer(&s), want.to_vec());
        assert_eq!(payload(&s).len(), 63);
        let legacy = b"VALUE AmazonElastiCache:cluster 0 63\r\n12\nnode-1.m.local|10.0.0.2|11211 node-2.m.local|10.0.0.3|11211\n\r\nEND\r\n";
        assert_eq!(legacy_answer(&s), legacy.to_vec());
    }

    #[test]
    fn one_node_and_none() {
        let one = spec(1, &[("10.0.0.2", "10.0.0.2")]);
        assert_eq!(
            config_answer(&one),
            b"CONFIG cluster 0 26\r\n1\n10.0.0.2|10.0.0.2|11211\n\r\nEND\r\n".to_vec()
        );
        let none = spec(3, &[]);
        assert_eq!(
            config_answer(&none),
            b"CONFIG cluster 0 3\r\n3\n\n\r\nEND\r\n".to_vec()
        );
    }

    #[test]
    fn other_commands_are_errors() {
        let a = Answers::of(&spec(2, &[("h", "10.0.0.2")]), "1.6.18");
        assert_eq!(
            reply("config get cluster", &a),
            Reply::Send(a.config.clone())
        );
        assert_eq!(
            reply("config  get cluster ", &a),
            Reply::Send(a.config.clone())
        );
        assert_eq!(
            reply("get AmazonElastiCache:cluster", &a),
            Reply::Send(a.legacy.clone())
        );
        assert_eq!(
            reply("version", &a),
            Reply::Send(b"VERSION 1.6.18\r\n".to_vec())
        );
        assert_eq!(reply("quit", &a), Reply::Close);
        for other in [
            "",
            "get foo",
            "config get",
            "CONFIG GET CLUSTER",
            "set a 0 0 1",
            "stats",
        ] {
            assert_eq!(
                reply(other, &a),
                Reply::Send(b"ERROR\r\n".to_vec()),
                "{other:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_listener_answers_pipelined_commands_follows_changes_and_stops() {
        use crate::memcache::client::McClient;

        let mut eps = DiscoveryEndpoints::new(Net::loopback(), "1.6.18");
        let mut s = spec(1, &[("a", "127.79.0.2")]);
        s.address = "127.0.0.1".into();
        s.port = free_port();
        eps.update(std::slice::from_ref(&s));
        assert_eq!(eps.listening().len(), 1);
        let stream = TcpStream::connect(("127.0.0.1", s.port))
            .await
            .expect("connects");
        let mut c = McClient::over(stream);
        c.send("config get cluster\r\nnonsense")
            .await
            .expect("sends");
        assert_eq!(c.read_line().await.expect("line"), "CONFIG cluster 0 21");
        assert_eq!(c.read_line().await.expect("line"), "1");
        assert_eq!(c.read_line().await.expect("line"), "a|127.79.0.2|11211");
        assert_eq!(c.read_line().await.expect("line"), "");
        assert_eq!(c.read_line().await.expect("line"), "END");
        assert_eq!(c.read_line().await.expect("line"), "ERROR");

        // A new config: the same connection sees it.
        s.config_version = 2;
        s.nodes.push(DiscoveryNode {
            host: "b".into(),
            ip: "127.79.0.3".into(),
            port: 11211,
        });
        eps.update(std::slice::from_ref(&s));
        c.send("config get cluster").await.expect("sends");
        assert_eq!(c.read_line().await.expect("line"), "CONFIG cluster 0 40");
        assert_eq!(c.read_line().await.expect("line"), "2");
        assert_eq!(
            c.read_line().await.expect("line"),
            "a|127.79.0.2|11211 b|127.79.0.3|11211"
        );

        // Gone from the config: the listener stops and the connection closes.
        eps.update(&[]);
        assert!(eps.listening().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(l) = c.read_line().await {
                rest.push(l);
            }
        })
        .await;
        assert!(
            TcpStream::connect(("127.0.0.1", s.port)).await.is_err(),
            "nothing listens any more"
        );
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("binds")
            .local_addr()
            .expect("addr")
            .port()
    }
}
