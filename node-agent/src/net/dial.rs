//! Sockets and processes inside a network namespace. A socket belongs to the namespace
//! of the thread that creates it, and a child process starts in the namespace of the
//! thread that forks it: so each is made on a short-lived thread that first joins the
//! namespace (`setns`), and the socket is then used from tokio like any other. The
//! agent's own threads never change namespace.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use nix::sched::CloneFlags;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::redis::acl::{self, Login};
use crate::redis::client::{Client, ClientError, CALL_TIMEOUT};
use crate::redis::tls;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The file of named namespace `ns`.
pub fn netns_path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

/// Runs `f` on a new thread that has joined namespace `ns` (this thread when `ns` is
/// `None`), and answers what it answers. Blocks the caller until `f` returns.
pub fn run_in<T, F>(ns: Option<&str>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let Some(ns) = ns else {
        return f();
    };
    let file = open_netns(ns)?;
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            f()
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// [`run_in`] without blocking the async caller: the thread answers over a channel.
pub async fn run_in_async<T, F>(ns: Option<&str>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let Some(ns) = ns else {
        return f();
    };
    let file = open_netns(ns)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let r = nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| f());
            let _ = tx.send(r);
        })?;
    rx.await
        .map_err(|_| io::Error::other("the namespace thread ended without an answer"))?
}

fn open_netns(ns: &str) -> io::Result<std::fs::File> {
    std::fs::File::open(netns_path(ns))
        .map_err(|e| io::Error::new(e.kind(), format!("network namespace {ns}: {e}")))
}

/// Runs `cmd` to completion in namespace `ns` (here for `None`), feeding it `stdin`.
pub async fn output_in(
    ns: Option<&str>,
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
) -> io::Result<Output> {
    let ns = ns.map(str::to_string);
    run_in_async(ns.clone().as_deref(), move || {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn()?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(&bytes)?;
        }
        child.wait_with_output()
    })
    .await
}

/// Runs `cmd` to completion in namespace `ns` (here for `None`) with the standard input,
/// output and error it was given (a daemon's log file: pipes would be held open by the
/// daemon it forks, and never end).
pub async fn status_in(ns: Option<&str>, mut cmd: Command) -> io::Result<std::process::ExitStatus> {
    run_in_async(ns, move || cmd.status()).await
}

/// Starts `cmd` in namespace `ns` and lets it run on its own thread (reaped when it
/// ends); for announcements nobody waits for.
pub fn spawn_detached_in(ns: Option<&str>, mut cmd: Command) {
    let ns = ns.map(str::to_string);
    std::thread::spawn(move || {
        let r = run_in(ns.as_deref(), move || {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd.status()
        });
        if let Err(e) = r {
            tracing::debug!(error = %e, "detached command failed");
        }
    });
}

/// How the agent opens TCP connections and listeners for a node: in the node's network
/// namespace (netns mode), or in the agent's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Dialer {
    netns: Option<String>,
}

impl Dialer {
    /// The agent's own namespace (loopback and host modes).
    pub fn here() -> Self {
        Dialer::default()
    }

    /// Named namespace `ns`.
    pub fn in_netns(ns: impl Into<String>) -> Self {
        Dialer {
            netns: Some(ns.into()),
        }
    }

    /// The namespace, if not the agent's own.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// A TCP connection to `host:port` (`host` an IP address in a namespace).
    pub async fn tcp(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let Some(ns) = self.netns() else {
            return TcpStream::connect((host, port)).await;
        };
        let addr = SocketAddr::new(parse_ip(host)?, port);
        let socket = run_in_async(Some(ns), move || new_socket(addr)).await?;
        socket.connect(addr).await
    }

    /// A client of the engine at `host:port` (of another host), over TLS checked against
    /// the instance's `ca` when the instance has one, logged in with the first of
    /// `logins` it accepts ([`acl::first_accepted`]).
    pub async fn client(
        &self,
        host: &str,
        port: u16,
        logins: &[Login],
        ca: Option<&str>,
    ) -> Result<Client, ClientError> {
        acl::first_accepted(logins, |login| async move {
            let stream = tokio::time::timeout(CALL_TIMEOUT, self.tcp(host, port))
                .await
                .map_err(|_| ClientError::Timeout(CALL_TIMEOUT))??;
            match ca {
                None => Client::over_tcp(stream, login).await,
                Some(ca) => {
                    stream.set_nodelay(true)?;
                    tls::over_tls(stream, host, ca, login).await
                }
            }
        })
        .await
    }

    /// A listener on `addr` (with `SO_REUSEADDR`). Must be called within the tokio
    /// runtime that will serve it; blocks for the namespace thread.
    pub fn listener(&self, addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
        let socket = run_in(self.netns(), move || {
            let s = new_socket(addr)?;
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            Ok(s)
        })?;
        socket.listen(backlog)
    }
}

fn parse_ip(host: &str) -> io::Result<IpAddr> {
    host.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{host}' is not an IP address"),
        )
    })
}

fn new_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_agents_own_namespace_dials_and_listens_as_usual() {
        let rt = tokio::runtime::Handle::current();
        let _g = rt.enter();
        let l = Dialer::here()
            .listener("127.0.0.1:0".parse().expect("addr"), 16)
            .expect("listens");
        let port = l.local_addr().expect("addr").port();
        let c = Dialer::here().tcp("127.0.0.1", port).await;
        assert!(c.is_ok(), "{c:?}");
    }

    #[tokio::test]
    async fn a_missing_namespace_is_named_in_the_error() {
        let e = Dialer::in_netns("cacheplane-no-such-ns")
            .tcp("10.0.0.1", 1)
            .await
            .expect_err("no namespace");
        assert!(e.to_string().contains("cacheplane-no-such-ns"), "{e}");
        assert!(Dialer::in_netns("x").tcp("host", 1).await.is_err());
    }
}
