//! The flags of the instance commands that take many: create, update and scale, and the
//! enums their flags choose from.

use cacheplane_types::{DataProtectionMode, ReadReplicasMode, Tier};

use super::super::operations::LroArgs;
use super::super::parse_kv;

/// `--tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierArg {
    /// One node, no replicas (BASIC).
    Basic,
    /// A primary and replicas across zones with automatic failover (STANDARD_HA).
    StandardHa,
}

impl From<TierArg> for Tier {
    fn from(t: TierArg) -> Tier {
        match t {
            TierArg::Basic => Tier::Basic,
            TierArg::StandardHa => Tier::StandardHa,
        }
    }
}

/// `--read-replicas-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadReplicasArg {
    /// A read endpoint spreads connections over the replicas.
    Enabled,
    /// No read endpoint.
    Disabled,
}

impl From<ReadReplicasArg> for ReadReplicasMode {
    fn from(m: ReadReplicasArg) -> ReadReplicasMode {
        match m {
            ReadReplicasArg::Enabled => ReadReplicasMode::ReadReplicasEnabled,
            ReadReplicasArg::Disabled => ReadReplicasMode::ReadReplicasDisabled,
        }
    }
}

/// `--data-protection-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataProtectionArg {
    /// Refuse while the best replica lags by 30 MB or more.
    LimitedDataLoss,
    /// Fail over whatever the lag.
    ForceDataLoss,
}

impl From<DataProtectionArg> for DataProtectionMode {
    fn from(m: DataProtectionArg) -> DataProtectionMode {
        match m {
            DataProtectionArg::LimitedDataLoss => DataProtectionMode::LimitedDataLoss,
            DataProtectionArg::ForceDataLoss => DataProtectionMode::ForceDataLoss,
        }
    }
}

/// `instances create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The new instance's id: 1-40 lowercase letters, digits or hyphens.
    pub instance: String,
    /// The service tier.
    #[arg(long, value_enum, default_value_t = TierArg::Basic)]
    pub tier: TierArg,
    /// Memory limit in GB (GiB).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub size: i64,
    /// Replicas (STANDARD_HA): 1 without read replicas, 1-5 with them. More than 1
    /// enables read replicas unless --read-replicas-mode says otherwise.
    #[arg(long, allow_negative_numbers = true)]
    pub replica_count: Option<i64>,
    /// Serve reads from the replicas on a read endpoint (STANDARD_HA).
    #[arg(long, value_enum)]
    pub read_replicas_mode: Option<ReadReplicasArg>,
    /// Zone of the primary (chosen by the system if omitted).
    #[arg(long)]
    pub zone: Option<String>,
    /// Zone of the first replica (STANDARD_HA; chosen by the system if omitted).
    #[arg(long)]
    pub alternative_zone: Option<String>,
    /// The network to reach it from, by id or full name (default: `default`).
    #[arg(long)]
    pub network: Option<String>,
    /// The instance's address range: a CIDR of /28 or larger inside the network's pool
    /// (allocated if omitted).
    #[arg(long)]
    pub reserved_ip_range: Option<String>,
    /// Engine version, e.g. REDIS_7_0 (the default).
    #[arg(long)]
    pub redis_version: Option<String>,
    /// Engine settings, KEY=VALUE[,KEY=VALUE…], e.g. maxmemory-policy=allkeys-lru.
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    pub redis_config: Vec<(String, String)>,
    /// Labels, KEY=VALUE[,KEY=VALUE…].
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    pub labels: Vec<(String, String)>,
    /// Free text for people, at most 80 characters.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Let clients in without AUTH (AUTH is on by default).
    #[arg(long)]
    pub no_auth: bool,
    /// TLS in transit (set at create only): server-authentication serves TLS only, on
    /// port 6378; `get-server-ca` gives the CA clients trust.
    #[arg(long, value_enum)]
    pub transit_encryption_mode: Option<super::tls::TransitEncryptionArg>,
    #[command(flatten)]
    pub lro: LroArgs,
}

/// `instances update`.
#[derive(Debug, Default, clap::Args)]
pub struct UpdateArgs {
    /// The instance's id, or its full name.
    pub instance: String,
    #[command(flatten)]
    pub resize: Resize,
    /// `enabled` turns read replicas on (alone, without other changes).
    #[arg(long, value_enum)]
    pub read_replicas_mode: Option<ReadReplicasArg>,
    /// With --read-replicas-mode enabled: the further /28 the read endpoint needs, or
    /// `auto` (the default) to allocate one.
    #[arg(long, requires = "read_replicas_mode")]
    pub secondary_ip_range: Option<String>,
    /// Engine settings to set, KEY=VALUE[,KEY=VALUE…].
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    pub update_redis_config: Vec<(String, String)>,
    /// Engine settings to remove, KEY[,KEY…].
    #[arg(long, value_delimiter = ',')]
    pub remove_redis_config: Vec<String>,
    /// Labels to set, KEY=VALUE[,KEY=VALUE…].
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    pub update_labels: Vec<(String, String)>,
    /// Labels to remove, KEY[,KEY…].
    #[arg(long, value_delimiter = ',')]
    pub remove_labels: Vec<String>,
    /// New display name.
    #[arg(long)]
    pub display_name: Option<String>,
    #[command(flatten)]
    pub lro: LroArgs,
}

/// `instances scale`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["size", "replica_count"])))]
pub struct ScaleArgs {
    /// The instance's id, or its full name.
    pub instance: String,
    #[command(flatten)]
    pub resize: Resize,
    #[command(flatten)]
    pub lro: LroArgs,
}

/// The flags that resize an instance, in `update` and `scale`.
#[derive(Debug, Default, clap::Args)]
pub struct Resize {
    /// New memory limit in GB.
    #[arg(long, allow_negative_numbers = true)]
    pub size: Option<i64>,
    /// New number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    pub replica_count: Option<i64>,
}
