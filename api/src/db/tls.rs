//! `instance_tls` rows and the TLS columns of `instance` (docs/architecture.md#tls-in-transit).
//! The private keys are read only here, for rotation and for the host config.

use cacheplane_types::TlsCertificate;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::ApiResult;

/// The PEM material of a TLS instance as first issued.
pub struct Keys<'a> {
    /// The CA certificate.
    pub ca_cert: &'a str,
    /// The CA's private key.
    pub ca_key: &'a str,
    /// The server certificate.
    pub server_cert: &'a str,
    /// The server certificate's private key.
    pub server_key: &'a str,
    /// The server certificate's serial number (decimal).
    pub server_serial: &'a str,
}

/// Stores the TLS material of `instance` and makes it a TLS instance on `port`, with
/// `ca_certs` as its `serverCaCerts`.
pub async fn insert(
    tx: &mut PgConnection,
    instance: Uuid,
    keys: &Keys<'_>,
    ca_certs: &[TlsCertificate],
    port: u16,
) -> ApiResult<()> {
    sqlx::query(
        "insert into instance_tls (instance_id, ca_cert, ca_key, server_cert, server_key, server_serial)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(instance)
    .bind(keys.ca_cert)
    .bind(keys.ca_key)
    .bind(keys.server_cert)
    .bind(keys.server_key)
    .bind(keys.server_serial)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update instance set transit_encryption_mode = 'SERVER_AUTHENTICATION',
             server_ca_certs = $2, port = $3 where id = $1",
    )
    .bind(instance)
    .bind(Json(ca_certs))
    .bind(i32::from(port))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The CA's private key of `instance`; `None` for an instance without TLS.
pub async fn ca_key(db: impl PgExecutor<'_>, instance: Uuid) -> ApiResult<Option<String>> {
    Ok(
        sqlx::query_scalar("select ca_key from instance_tls where instance_id = $1")
            .bind(instance)
            .fetch_optional(db)
            .await?,
    )
}

/// Replaces the server certificate and key of `instance` (a rotation).
pub async fn set_server(
    tx: &mut PgConnection,
    instance: Uuid,
    cert: &str,
    key: &str,
    serial: &str,
) -> ApiResult<()> {
    sqlx::query(
        "update instance_tls set server_cert = $2, server_key = $3, server_serial = $4,
             rotated_at = now() where instance_id = $1",
    )
    .bind(instance)
    .bind(cert)
    .bind(key)
    .bind(serial)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
