//! A TLS engine as the agent runs it (docs/architecture.md#tls-in-transit): TLS only on
//! its port, its files private, a replica linked over TLS, the agent's TLS client
//! trusting the instance's CA and nothing else, and a new certificate reloaded without
//! a restart. The certificates come from `openssl` (the API issues them with rcgen).

mod common;

use std::path::Path;
use std::process::Command;

use cacheplane_node_agent::net::dial::Dialer;
use cacheplane_node_agent::redis::acl::{self, Login};
use cacheplane_node_agent::redis::client::{Client, Reply};
use cacheplane_node_agent::redis::{local, process, tls, NodeDir};
use cacheplane_types::{NodeRole, NodeSpec, TlsSpec};
use common::{address, spec, wait_until, DataDir, AUTH};

/// Runs `openssl ARGS` in `dir`; fails the test when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl (install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).expect("a PEM openssl wrote")
}

/// A CA `NAME.ca.pem` (key `NAME.ca.key`) in `dir`.
fn ca(dir: &Path, name: &str) -> String {
    let (key, cert) = (format!("{name}.ca.key"), format!("{name}.ca.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "1",
            "-subj",
            &format!("/CN={name} CA"),
        ],
    );
    read(dir, &cert)
}

/// A server certificate `NAME.pem` (key `NAME.key`) from CA `ca` for the IP `ips`.
fn server(dir: &Path, ca: &str, name: &str, ips: &[String]) -> (String, String) {
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={}\n", san.join(",")),
    )
    .expect("writing the extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.ca.pem"),
            "-CAkey",
            &format!("{ca}.ca.key"),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    (read(dir, &cert), read(dir, &key))
}

fn with_tls(s: NodeSpec, ca_cert: &str, (cert, key): &(String, String)) -> NodeSpec {
    NodeSpec {
        port: 6378,
        tls: Some(TlsSpec {
            ca_cert: ca_cert.to_string(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        ..s
    }
}

async fn tls_ping(s: &NodeSpec, ca: &str) -> Result<(), String> {
    let mut c = Dialer::default()
        .client(&s.address, s.port, &[Login::tenant_auth(AUTH)], Some(ca))
        .await
        .map_err(|e| e.to_string())?;
    c.ping().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_tls_engine_serves_tls_only_replicates_and_reloads_its_certificate() {
    let bin = require_redis!();
    let data = DataDir::new("tls");
    let pki = data.path().join("pki");
    std::fs::create_dir_all(&pki).expect("a pki dir");
    let ips = vec![address(61), address(62)];
    let ca_pem = ca(&pki, "inst");
    let other_ca = ca(&pki, "other");
    let first = server(&pki, "inst", "one", &ips);

    let p = with_tls(spec(61, NodeRole::Primary, None), &ca_pem, &first);
    let r = with_tls(spec(62, NodeRole::Replica, Some(&p)), &ca_pem, &first);
    let (pdir, rdir) = (
        NodeDir::new(data.path(), p.node_id),
        NodeDir::new(data.path(), r.node_id),
    );
    process::start(&bin, &p, &pdir)
        .await
        .expect("the primary starts");
    process::start(&bin, &r, &rdir)
        .await
        .expect("the replica starts");

    for f in [tls::CA_FILE, tls::CERT_FILE, tls::KEY_FILE] {
        let mode = std::fs::metadata(pdir.dir.join(f))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "{f}");
    }
    // TLS with the instance's CA; nothing in plain; nothing with another CA.
    tls_ping(&p, &ca_pem).await.expect("PING over TLS");
    let plain = async {
        Client::connect(&p.address, p.port, Some(&Login::tenant_auth(AUTH)))
            .await?
            .ping()
            .await
    };
    assert!(plain.await.is_err(), "a plaintext client was answered");
    assert!(
        tls_ping(&p, &other_ca).await.is_err(),
        "the agent trusted a certificate from another CA"
    );

    // Replication runs over TLS (there is no plain port to use).
    let mut primary = local::connect(&pdir, &p, &acl::logins(&[&p]))
        .await
        .expect("socket");
    primary.call(&["SET", "k", "v"]).await.expect("SET");
    wait_until(10, "the replica has k over TLS", || {
        let (addr, ca) = (r.address.clone(), ca_pem.clone());
        async move {
            let Ok(mut c) = Dialer::default()
                .client(&addr, 6378, &[Login::tenant_auth(AUTH)], Some(&ca))
                .await
            else {
                return false;
            };
            matches!(c.call(&["GET", "k"]).await, Ok(Reply::Bulk(Some(v))) if v == b"v")
        }
    })
    .await;

    // A certificate naming only the replica's address is refused for the primary's:
    // the agent checks the address it dialed.
    let narrow = server(&pki, "inst", "narrow", &[address(62)]);
    let p_narrow = with_tls(p.clone(), &ca_pem, &narrow);
    let pid = process::read_pid(&pdir).expect("a pid");
    tls::reload(&mut primary, &p_narrow, &pdir)
        .await
        .expect("CONFIG SET of the TLS files");
    assert!(
        tls_ping(&p, &ca_pem).await.is_err(),
        "a certificate without the dialed address was accepted"
    );
    // Rotation back to a full certificate, online: same process, a new certificate.
    let second = server(&pki, "inst", "two", &ips);
    let p_two = with_tls(p.clone(), &ca_pem, &second);
    tls::reload(&mut primary, &p_two, &pdir)
        .await
        .expect("CONFIG SET of the TLS files");
    tls_ping(&p, &ca_pem)
        .await
        .expect("PING with the new certificate");
    assert_eq!(read(&pdir.dir, tls::CERT_FILE), second.0);
    assert_eq!(process::read_pid(&pdir), Some(pid), "the engine restarted");
    primary
        .ping()
        .await
        .expect("the agent's own connection stays");

    process::stop(&rdir, Some(&r)).await.expect("stops");
    process::stop(&pdir, Some(&p)).await.expect("stops");
}
