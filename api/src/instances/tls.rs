//! TLS in transit (docs/architecture.md#tls-in-transit): each `SERVER_AUTHENTICATION`
//! instance gets a CA of its own and a server certificate signed by it, valid for every
//! address of the instance's range (its endpoints and any node, today's or one placed
//! after a failover or repair), so nodes never need a certificate of their own. A
//! rotation issues a new server certificate from the same CA: clients keep trusting it.
//!
//! Private keys are generated here, stored in `instance_tls` and sent only to the
//! instance's agents in their host config; they are never returned by another endpoint
//! nor logged (nothing here implements `Debug` on them).

use std::net::{IpAddr, Ipv4Addr};

use cacheplane_types::{InstanceState, Operation, OperationVerb, TlsCertificate};
use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha1::{Digest, Sha1};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::instances::{self as db, Guard};
use crate::db::{nodes, tls as db_tls};
use crate::error::{ApiError, ApiResult};
use crate::idempotency;
use crate::instances::{touch_nodes, InstanceRef, InstanceRow};
use crate::operations;
use crate::state::AppState;

/// The port of a TLS instance's endpoints and nodes, as Memorystore.
pub const TLS_PORT: u16 = 6378;
/// How long an instance CA is valid.
const CA_DAYS: i64 = 10 * 365;
/// How long a server certificate is valid; rotate before then.
const SERVER_DAYS: i64 = 5 * 365;
/// At most this many addresses of a range are named in a server certificate: every
/// address of a /28 to a /24. Nodes take the lowest free addresses of their range, so in
/// a larger range they stay far below this.
const MAX_SAN_ADDRESSES: u32 = 256;

/// A freshly issued certificate: its PEM, its private key (PEM), and its public facts.
pub struct Issued {
    /// The certificate, PEM.
    pub cert: String,
    /// Its private key, PEM. A secret.
    pub key: String,
    /// Serial, times and fingerprint.
    pub public: TlsCertificate,
}

fn internal(what: &str, e: rcgen::Error) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{what}: {e}"))
}

/// A positive random 63-bit serial number.
fn serial() -> u64 {
    (rand::random::<u64>() >> 1).max(1)
}

fn to_time(t: DateTime<Utc>) -> ApiResult<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("certificate time: {e}")))
}

/// The CA's fixed parameters: the same every time for an instance, so that a server
/// certificate signed later (a rotation) names the same issuer and key identifier.
fn ca_params(instance: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Cacheplane");
    dn.push(DnType::CommonName, format!("Cacheplane CA for {instance}"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Sets the validity and serial of `p`, from a minute ago (clocks differ a little)
/// for `days`; returns the public facts once the certificate exists.
fn validity(
    p: &mut CertificateParams,
    days: i64,
) -> ApiResult<(u64, DateTime<Utc>, DateTime<Utc>)> {
    let now = Utc::now();
    let start = DateTime::from_timestamp(now.timestamp() - 60, 0).unwrap_or(now);
    let end = start + chrono::Duration::days(days);
    let n = serial();
    p.serial_number = Some(SerialNumber::from(n));
    p.not_before = to_time(start)?;
    p.not_after = to_time(end)?;
    Ok((n, start, end))
}

fn public(
    der: &[u8],
    pem: &str,
    n: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> TlsCertificate {
    TlsCertificate {
        serial_number: n.to_string(),
        cert: pem.to_string(),
        create_time: start,
        expire_time: end,
        sha1_fingerprint: hex::encode(Sha1::digest(der)),
    }
}

/// Issues the CA of `instance` (its full name).
pub fn issue_ca(instance: &str) -> ApiResult<Issued> {
    let key = KeyPair::generate().map_err(|e| internal("CA key", e))?;
    let mut p = ca_params(instance);
    let (n, start, end) = validity(&mut p, CA_DAYS)?;
    let cert = p
        .self_signed(&key)
        .map_err(|e| internal("CA certificate", e))?;
    let pem = cert.pem();
    Ok(Issued {
        public: public(cert.der(), &pem, n, start, end),
        cert: pem,
        key: key.serialize_pem(),
    })
}

/// The addresses a server certificate of `range` names: all of them, up to
/// [`MAX_SAN_ADDRESSES`].
pub fn san_addresses(range: Ipv4Net) -> Vec<Ipv4Addr> {
    let first = u32::from(range.network());
    let count = (1u64 << (32 - range.prefix_len())).min(u64::from(MAX_SAN_ADDRESSES)) as u32;
    (0..count).map(|i| Ipv4Addr::from(first + i)).collect()
}

/// Issues a server certificate for every address of `range`, signed by the CA of
/// `instance` whose key is `ca_key` (PEM).
pub fn issue_server(instance: &str, ca_key: &str, range: Ipv4Net) -> ApiResult<Issued> {
    let ca_key = KeyPair::from_pem(ca_key).map_err(|e| internal("CA key", e))?;
    // Only the issuer's name, key identifier method and key are used to sign.
    let issuer = ca_params(instance)
        .self_signed(&ca_key)
        .map_err(|e| internal("CA certificate", e))?;
    let key = KeyPair::generate().map_err(|e| internal("server key", e))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Cacheplane");
    dn.push(DnType::CommonName, format!("{instance} {range}"));
    p.distinguished_name = dn;
    p.subject_alt_names = san_addresses(range)
        .into_iter()
        .map(|a| SanType::IpAddress(IpAddr::V4(a)))
        .collect();
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Client too: a replica presents it to its primary over the replication link.
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let (n, start, end) = validity(&mut p, SERVER_DAYS)?;
    let cert = p
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| internal("server certificate", e))?;
    let pem = cert.pem();
    Ok(Issued {
        public: public(cert.der(), &pem, n, start, end),
        cert: pem,
        key: key.serialize_pem(),
    })
}

fn range_of(inst: &InstanceRow) -> ApiResult<Ipv4Net> {
    inst.range()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("instance {} has no range", inst.id)))
}

/// Makes a just-inserted instance (with its range `range`) a TLS one: issues its CA and
/// server certificate, stores them, and moves it to [`TLS_PORT`].
pub async fn enable(
    tx: &mut PgConnection,
    instance: Uuid,
    full_name: &str,
    range: Ipv4Net,
) -> ApiResult<()> {
    let ca = issue_ca(full_name)?;
    let server = issue_server(full_name, &ca.key, range)?;
    db_tls::insert(
        tx,
        instance,
        &db_tls::Keys {
            ca_cert: &ca.cert,
            ca_key: &ca.key,
            server_cert: &server.cert,
            server_key: &server.key,
            server_serial: &server.public.serial_number,
        },
        &[ca.public],
        TLS_PORT,
    )
    .await
}

/// `POST …/instances/{instance}/rotateServerCertificate`: issues a new server
/// certificate from the instance's CA and hands it to every node; the agents reload it
/// online (no restart, connections stay). Answers with an update operation that ends
/// once every node runs it. `serverCaCerts` does not change.
pub async fn rotate_server_certificate(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    request_id: Option<&str>,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    let name = target.full_name();
    let what = ["rotateServerCertificate", name.as_str()];
    let idempotency::Mutation {
        mut tx,
        op_id,
        earlier,
        ..
    } = idempotency::begin_mutation(state, &target.project, request_id, &what).await?;
    if let Some(earlier) = earlier {
        return Ok(earlier.to_wire());
    }
    let inst = target.lock(&mut tx).await?;
    let Some(ca_key) = db_tls::ca_key(&mut *tx, inst.id).await? else {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' has transitEncryptionMode DISABLED: it has no server certificate",
            inst.name
        )));
    };
    if inst.state != InstanceState::Ready {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is {}; its server certificate is rotated only when it is READY",
            inst.name,
            inst.state.as_str()
        )));
    }
    let server = issue_server(&inst.full_name(), &ca_key, range_of(&inst)?)?;
    db_tls::set_server(
        &mut tx,
        inst.id,
        &server.cert,
        &server.key,
        &server.public.serial_number,
    )
    .await?;
    let ids: Vec<Uuid> = nodes::of_instances(&mut *tx, &[inst.id])
        .await?
        .into_iter()
        .filter(|n| !n.removing)
        .map(|n| n.id)
        .collect();
    touch_nodes(&mut tx, &ids).await?;
    db::set_state(
        &mut tx,
        inst.id,
        InstanceState::Updating,
        None,
        Guard::Always,
    )
    .await?;
    let new_op = operations::NewOperation {
        params: serde_json::json!({ "rotateServerCertificate": true }),
        ..inst.new_operation(
            op_id,
            OperationVerb::Update,
            "reloading the new server certificate on the nodes",
        )
    };
    operations::insert(&mut tx, new_op).await?;
    tx.commit().await?;
    tracing::info!(instance = %inst.full_name(), serial = %server.public.serial_number, "server certificate rotated");
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_certificate_names_every_address_of_its_range() {
        let r: Ipv4Net = "10.0.0.16/28".parse().expect("a range");
        let a = san_addresses(r);
        assert_eq!(a.len(), 16);
        assert_eq!(a[0], Ipv4Addr::new(10, 0, 0, 16));
        assert_eq!(a[15], Ipv4Addr::new(10, 0, 0, 31));
        let big: Ipv4Net = "10.0.0.0/20".parse().expect("a range");
        assert_eq!(san_addresses(big).len(), 256);
    }

    #[test]
    fn a_rotated_certificate_comes_from_the_same_ca() {
        let name = "projects/p/locations/r/instances/c";
        let ca = issue_ca(name).expect("a CA");
        assert!(ca.key.contains("PRIVATE KEY"));
        assert_eq!(ca.public.sha1_fingerprint.len(), 40);
        assert!(ca.public.expire_time > ca.public.create_time);
        let r: Ipv4Net = "10.0.0.16/28".parse().expect("a range");
        let one = issue_server(name, &ca.key, r).expect("a certificate");
        let two = issue_server(name, &ca.key, r).expect("another");
        assert_ne!(one.public.serial_number, two.public.serial_number);
        assert_ne!(one.key, two.key);
    }
}
