//! One read endpoint: its listener, the accept loop that admits each new connection
//! (up to the cap) and picks a replica for it, and the relays that copy bytes between a
//! client and its replica until either side closes or the connection idles out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::backend::{self, Backend, Candidate, Lent};
use super::idle::Activity;
use super::limits::{Admission, Limits};
use super::{health, BackendStatus, EndpointConfig, EndpointStatus};

/// Bytes buffered per direction of a relayed connection: 4× tokio's default and twice
/// Redis's own read chunk, so large values pass in few reads and writes (64 KiB values
/// measured ~5-10 % faster than with 16 KiB), while a connection costs at most 64 KiB.
const COPY_BUFFER: usize = 32 * 1024;
/// Longest wait for a replica to accept a relayed connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (e.g. out of file descriptors), so as not to spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Listen backlog: a pool of clients reconnecting at once should not be turned away.
const BACKLOG: u32 = 1024;
/// How long a client that finds no healthy replica waits for a fresh check of them
/// (asked at once) before its connection is closed. Health seen up to a check period
/// ago must not turn away a client of a replica that has just linked.
const NO_REPLICA_WAIT: Duration = Duration::from_millis(250);
/// How often that client looks again meanwhile.
const NO_REPLICA_LOOK: Duration = Duration::from_millis(5);

/// A read endpoint the agent serves.
pub struct Endpoint {
    address: String,
    port: u16,
    config: EndpointConfig,
    handle: Handle,
    /// Cancelled when the endpoint stops: ends its listener, relays and checks.
    cancel: CancellationToken,
    backends: watch::Sender<Vec<Arc<Backend>>>,
    auth: watch::Sender<health::Dialing>,
    limits: Limits,
    /// Where the kernel serves it instead, if it does.
    kernel: Option<super::kernel::Table>,
    admission: Arc<Admission>,
    listening: bool,
    /// The last bind error logged, so that a retry every pass logs once.
    bind_error: Option<String>,
}

impl Endpoint {
    /// An endpoint at `address:port` whose replicas' checks run on `handle`. It
    /// listens once [`Endpoint::listen`] succeeds, and relays within `limits`; or, with
    /// `kernel`, has the kernel spread its connections with that table.
    pub fn new(
        address: String,
        port: u16,
        config: EndpointConfig,
        limits: Limits,
        kernel: Option<super::kernel::Table>,
        handle: Handle,
    ) -> Self {
        let cancel = CancellationToken::new();
        let (auth, _) = watch::channel(health::Dialing::of(&config));
        let (backends, _) = watch::channel(Vec::new());
        let mut e = Endpoint {
            address,
            port,
            config: EndpointConfig::default(),
            handle,
            cancel,
            backends,
            auth,
            admission: Arc::new(Admission::new(limits.max_connections)),
            limits,
            kernel,
            listening: false,
            bind_error: None,
        };
        e.set(config);
        e
    }

    /// Applies a new config: replicas that left are closed (with their connections),
    /// new ones are checked before they take connections.
    pub fn set(&mut self, config: EndpointConfig) {
        if config == self.config {
            return;
        }
        self.auth.send_if_modified(|a| {
            let new = health::Dialing::of(&config);
            let changed = *a != new;
            *a = new;
            changed
        });
        let (next, added) = backend::resize(
            &self.backends.borrow(),
            &config.replicas,
            &config.dialer,
            &self.cancel,
        );
        for b in added {
            self.handle.spawn(health::watch(b, self.auth.subscribe()));
        }
        self.backends.send_replace(next);
        self.config = config;
    }

    /// Starts listening if not yet; false while the address cannot be bound (e.g. the
    /// agent of the former primary still holds it), tried again on the next call.
    pub fn listen(&mut self) -> bool {
        if self.listening {
            return true;
        }
        if let Some(table) = &self.kernel {
            self.handle.spawn(super::kernel::serve(
                table.clone(),
                self.address.clone(),
                self.port,
                self.backends.subscribe(),
                self.cancel.clone(),
            ));
            self.listening = true;
            return true;
        }
        match self.bind() {
            Ok(listener) => {
                tracing::info!(endpoint = %format!("{}:{}", self.address, self.port), "read endpoint listening");
                let gate = Gate {
                    endpoint: format!("{}:{}", self.address, self.port),
                    admission: self.admission.clone(),
                    idle_timeout: self.limits.idle_timeout,
                };
                let backends = self.backends.subscribe();
                self.handle
                    .spawn(accept_loop(listener, backends, gate, self.cancel.clone()));
                self.listening = true;
                self.bind_error = None;
            }
            Err(e) => {
                let e = e.to_string();
                if self.bind_error.as_ref() != Some(&e) {
                    tracing::warn!(endpoint = %format!("{}:{}", self.address, self.port), error = %e, "cannot listen on the read endpoint; will retry");
                    self.bind_error = Some(e);
                }
            }
        }
        self.listening
    }

    fn bind(&self) -> std::io::Result<TcpListener> {
        let ip: std::net::IpAddr = self.address.parse().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an IP address")
        })?;
        let addr = SocketAddr::new(ip, self.port);
        // The listener registers with the proxy runtime's reactor.
        let _entered = self.handle.enter();
        self.config.dialer.listener(addr, BACKLOG)
    }

    /// What it serves now.
    pub fn status(&self) -> EndpointStatus {
        EndpointStatus {
            instance: self.config.instance.clone(),
            address: self.address.clone(),
            port: self.port,
            listening: self.listening,
            kernel: self.kernel.is_some(),
            connections: self.admission.connections(),
            refused: self.admission.refused(),
            backends: self
                .backends
                .borrow()
                .iter()
                .map(|b| BackendStatus {
                    address: b.address.clone(),
                    port: b.port,
                    healthy: b.is_healthy(),
                    connections: b.connections(),
                })
                .collect(),
        }
    }
}

impl Drop for Endpoint {
    /// Stops listening and closes every connection.
    fn drop(&mut self) {
        self.cancel.cancel();
        if self.listening {
            tracing::info!(endpoint = %format!("{}:{}", self.address, self.port), "read endpoint stopped");
        }
    }
}

/// What the accept loop applies to each connection.
struct Gate {
    /// `address:port`, for logs.
    endpoint: String,
    admission: Arc<Admission>,
    idle_timeout: Duration,
}

/// Accepts clients until cancelled, sending each to the replica [`backend::choose`]
/// picks, or closing it at once when the endpoint is at its cap or (after a short wait
/// for a fresh check) no replica is healthy.
async fn accept_loop(
    listener: TcpListener,
    backends: watch::Receiver<Vec<Arc<Backend>>>,
    gate: Gate,
    cancel: CancellationToken,
) {
    let mut cursor = 0usize;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::warn!(error = %e, "read endpoint: accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Some(slot) = gate.admission.admit(&gate.endpoint) else {
            // Dropped: closed at once.
            continue;
        };
        let conn = Conn {
            client,
            slot,
            idle_timeout: gate.idle_timeout,
        };
        match pick(&backends, &mut cursor) {
            Some(lent) => {
                tokio::spawn(relay(conn, lent));
            }
            None => {
                tokio::spawn(wait_for_replica(conn, backends.clone()));
            }
        }
    }
}

/// The replica for a new connection, if one is healthy.
fn pick(backends: &watch::Receiver<Vec<Arc<Backend>>>, cursor: &mut usize) -> Option<Lent> {
    let set = backends.borrow();
    let view: Vec<Candidate> = set.iter().map(|b| b.candidate()).collect();
    backend::choose(&view, *cursor).map(|i| {
        *cursor = i.wrapping_add(1);
        set[i].lend()
    })
}

/// A client that found no healthy replica: asks every replica's check to look now and
/// relays to the first found healthy within [`NO_REPLICA_WAIT`], else closes it.
async fn wait_for_replica(conn: Conn, backends: watch::Receiver<Vec<Arc<Backend>>>) {
    for b in backends.borrow().iter() {
        b.check_now.notify_one();
    }
    let deadline = tokio::time::Instant::now() + NO_REPLICA_WAIT;
    let mut cursor = 0;
    loop {
        tokio::time::sleep(NO_REPLICA_LOOK).await;
        if let Some(lent) = pick(&backends, &mut cursor) {
            relay(conn, lent).await;
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!("read endpoint: no healthy replica; connection refused");
            return;
        }
    }
}

/// An admitted client connection.
struct Conn {
    client: TcpStream,
    /// Its place under the endpoint's cap, freed when it closes.
    slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
}

/// Copies bytes both ways between the client and its replica for the connection's life,
/// until it idles out, or until the replica leaves the endpoint.
async fn relay(conn: Conn, lent: Lent) {
    let Conn {
        client,
        slot: _slot,
        idle_timeout,
    } = conn;
    let b = lent.backend();
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, b.dialer.tcp(&b.address, b.port));
    let server = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(replica = %b.address, error = %e, "read endpoint: cannot reach replica");
            b.set_healthy(false);
            return;
        }
        Err(_) => {
            b.set_healthy(false);
            return;
        }
    };
    // Requests and replies are small: send them at once.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let activity = Activity::default();
    let (mut client, mut server) = (activity.watch(client), activity.watch(server));
    tokio::select! {
        _ = b.closed.cancelled() => {}
        _ = activity.idle(idle_timeout) => {
            tracing::debug!(replica = %b.address, "read endpoint: idle connection closed");
        }
        _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, COPY_BUFFER, COPY_BUFFER) => {}
    }
}
