//! The TLS commands of `cachectl instances`: `get-server-ca` (the CA a client trusts),
//! `rotate-server-certificate`, and the CA file `env` points clients at.

use std::path::{Path, PathBuf};

use cacheplane_types::{Instance, Operation, TransitEncryptionMode};

use super::super::operations::LroArgs;
use super::super::{Ctx, Located};
use super::finish::{finish, request_id};
use super::COLLECTION;
use crate::error::{Error, Result};

/// `--transit-encryption-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransitEncryptionArg {
    /// Plain RESP on port 6379.
    Disabled,
    /// TLS only, on port 6378, with a certificate from the instance's own CA.
    ServerAuthentication,
}

impl From<TransitEncryptionArg> for TransitEncryptionMode {
    fn from(m: TransitEncryptionArg) -> TransitEncryptionMode {
        match m {
            TransitEncryptionArg::Disabled => TransitEncryptionMode::Disabled,
            TransitEncryptionArg::ServerAuthentication => {
                TransitEncryptionMode::ServerAuthentication
            }
        }
    }
}

/// The PEM of the instance's CA certificates, one after the other; a usage error for an
/// instance without TLS.
pub fn ca_pem(inst: &Instance) -> Result<String> {
    if inst.server_ca_certs.is_empty() {
        return Err(Error::Usage(format!(
            "instance {} has transitEncryptionMode {}: it has no server CA",
            inst.name,
            crate::output::wire(&inst.transit_encryption_mode)
        )));
    }
    Ok(inst
        .server_ca_certs
        .iter()
        .map(|c| c.cert.trim_end().to_string() + "\n")
        .collect())
}

/// Writes `pem` to `path` (creating its directory), replacing what was there.
pub fn write_ca(path: &Path, pem: &str) -> Result<()> {
    let fail = |e: std::io::Error| Error::Usage(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, pem).map_err(fail)
}

/// Where `env` writes an instance's CA unless told: next to cachectl's configuration
/// file (`CACHECTL_CONFIG`, else the XDG one), `server-ca/PROJECT/REGION/INSTANCE.pem`.
pub fn default_ca_file(l: &Located) -> Result<PathBuf> {
    let explicit = std::env::var_os("CACHECTL_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let base = crate::config::path(explicit.as_deref())?;
    let dir = base.parent().unwrap_or(Path::new("."));
    Ok(dir
        .join("server-ca")
        .join(&l.project)
        .join(&l.region)
        .join(format!("{}.pem", l.id)))
}

/// `instances rotate-server-certificate`: a new server certificate from the same CA,
/// reloaded by every node without a restart.
pub async fn rotate(ctx: &Ctx, instance: &str, lro: LroArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, instance)?;
    let mut path = l.path(COLLECTION);
    path.push("rotateServerCertificate");
    let op: Operation = ctx
        .client
        .post(&path, &request_id(&lro), &serde_json::json!({}))
        .await?;
    finish(ctx, op, &lro).await
}
