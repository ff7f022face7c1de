//! TLS in transit on the agent's side (docs/architecture.md#tls-in-transit): a TLS node's
//! certificate files, the `redis.conf` lines that use them, their reload on a running
//! engine, and TLS connections to engines of other hosts.
//!
//! The agent reaches the engines of its own host over their Unix socket, which stays
//! plain (see [`super::local`]). Engines of other hosts (a replica's primary, the
//! replicas behind a read endpoint) serve TLS only: the agent dials them with rustls and
//! checks their certificate against the instance's CA and the address it dialed.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use cacheplane_types::{NodeSpec, TlsSpec};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::acl::Login;
use super::client::{Client, ClientError, CALL_TIMEOUT};
use super::conf::quote;
use super::reconfigure::ReconfigureError;
use super::NodeDir;
use crate::store::write_atomic;

/// The instance's CA certificate, in the node directory.
pub const CA_FILE: &str = "ca.pem";
/// The server certificate.
pub const CERT_FILE: &str = "server.pem";
/// The server certificate's private key.
pub const KEY_FILE: &str = "server.key";

fn path(dir: &NodeDir, file: &str) -> PathBuf {
    dir.dir.join(file)
}

/// Writes the TLS files of a TLS node (mode 0600, atomically: an engine reloading them
/// never reads a torn file). Nothing for a plain node.
pub fn write_files(spec: &NodeSpec, dir: &NodeDir) -> anyhow::Result<()> {
    let Some(t) = &spec.tls else {
        return Ok(());
    };
    write_atomic(&path(dir, CA_FILE), t.ca_cert.as_bytes(), 0o600)?;
    write_atomic(&path(dir, CERT_FILE), t.cert.as_bytes(), 0o600)?;
    write_atomic(&path(dir, KEY_FILE), t.key.as_bytes(), 0o600)
}

/// The `port` lines of `redis.conf`: `port N` for a plain node; for a TLS node no plain
/// port at all (`port 0`), TLS on N with its files, no client certificates asked, and
/// replication over TLS (a replica checks its primary against the instance's CA).
pub fn port_lines(spec: &NodeSpec, dir: &NodeDir) -> String {
    let mut c = String::new();
    if spec.tls.is_none() {
        let _ = writeln!(c, "port {}", spec.port);
        return c;
    }
    c.push_str("port 0\n");
    let _ = writeln!(c, "tls-port {}", spec.port);
    for (key, file) in files() {
        let _ = writeln!(c, "{key} {}", quote(&path(dir, file).to_string_lossy()));
    }
    c.push_str("tls-auth-clients no\n");
    c.push_str("tls-replication yes\n");
    c
}

/// The engine's TLS settings and the files they name.
fn files() -> [(&'static str, &'static str); 3] {
    [
        ("tls-cert-file", CERT_FILE),
        ("tls-key-file", KEY_FILE),
        ("tls-ca-cert-file", CA_FILE),
    ]
}

/// Puts a new certificate into service on the running engine behind `c`, without a
/// restart: rewrites the files, then sets the three TLS settings in one `CONFIG SET`
/// (Redis reloads its TLS material on every CONFIG SET of them, even to the same path,
/// and keeps the old one if the new one does not load). Connections already open keep
/// their session; new ones get the new certificate.
pub async fn reload(
    c: &mut Client,
    spec: &NodeSpec,
    dir: &NodeDir,
) -> Result<(), ReconfigureError> {
    if spec.tls.is_none() {
        return Ok(());
    }
    write_files(spec, dir).map_err(|e| ReconfigureError {
        what: "writing the TLS files".into(),
        source: ClientError::Io(std::io::Error::other(format!("{e:#}"))),
    })?;
    let paths: Vec<(&str, String)> = files()
        .into_iter()
        .map(|(k, f)| (k, path(dir, f).to_string_lossy().into_owned()))
        .collect();
    let mut args = vec!["CONFIG", "SET"];
    for (k, p) in &paths {
        args.push(k);
        args.push(p);
    }
    c.call(&args)
        .await
        .map(|_| ())
        .map_err(|source| ReconfigureError {
            what: "CONFIG SET tls-cert-file tls-key-file tls-ca-cert-file".into(),
            source,
        })
}

/// The instance CA a spec's engines are checked against, when they serve TLS.
pub fn ca_of(spec: &NodeSpec) -> Option<&str> {
    spec.tls.as_ref().map(|t: &TlsSpec| t.ca_cert.as_str())
}

/// TLS over `tcp`, a connection to `host` (an engine of another host), checked against
/// the instance's `ca` (PEM) and the address dialled; then a client logged in with
/// `auth` when given. See [`crate::net::dial::Dialer::client`].
pub async fn over_tls(
    tcp: TcpStream,
    host: &str,
    ca: &str,
    auth: Option<&Login>,
) -> Result<Client, ClientError> {
    let connector = connector(ca)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Protocol(format!("{host} is not a server name: {e}")))?;
    let stream = tokio::time::timeout(CALL_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| ClientError::Timeout(CALL_TIMEOUT))??;
    Client::over_stream(stream, auth).await
}

/// A rustls connector that trusts `ca` (PEM) only, with the ring provider.
fn connector(ca: &str) -> Result<TlsConnector, ClientError> {
    let bad = |e: String| ClientError::Protocol(format!("instance CA: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_tls_node_has_no_plain_port() {
        let dir = NodeDir::new(Path::new("/data"), Uuid::nil());
        let mut spec: NodeSpec = serde_json::from_value(serde_json::json!({
            "nodeId": Uuid::nil(), "instance": "i", "engineVersion": "REDIS_7_0",
            "role": "PRIMARY", "address": "127.64.0.3", "port": 6378,
            "maxmemoryBytes": 1, "redisConfigs": {}
        }))
        .expect("a spec");
        assert_eq!(port_lines(&spec, &dir), "port 6378\n");
        spec.tls = Some(TlsSpec {
            ca_cert: "ca".into(),
            cert: "cert".into(),
            key: "key".into(),
        });
        let d = "/data/nodes/00000000-0000-0000-0000-000000000000";
        assert_eq!(
            port_lines(&spec, &dir),
            format!(
                "port 0\ntls-port 6378\ntls-cert-file \"{d}/server.pem\"\n\
                 tls-key-file \"{d}/server.key\"\ntls-ca-cert-file \"{d}/ca.pem\"\n\
                 tls-auth-clients no\ntls-replication yes\n"
            )
        );
    }

    #[test]
    fn a_ca_without_a_certificate_is_refused() {
        assert!(connector("not a pem").is_err());
    }
}
