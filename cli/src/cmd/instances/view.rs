//! How an instance looks: its table, the list's columns, and the `env` lines.

use cacheplane_types::{Instance, InstanceNodeMetrics};

use crate::error::Result;
use crate::output::{self, emit, shell_quote, Format};

/// Prints an instance in the chosen format: as a table, its fields then its nodes.
pub fn print(format: Format, inst: &Instance) -> Result<()> {
    emit(format, inst, table)
}

/// An instance for people: its fields, then a table of its nodes.
pub fn table(i: &Instance) -> String {
    let mut out = output::fields([
        ("name", i.name.clone()),
        ("displayName", i.display_name.clone()),
        ("state", output::wire(&i.state)),
        ("statusMessage", i.status_message.clone()),
        ("tier", output::wire(&i.tier)),
        ("memorySizeGb", i.memory_size_gb.to_string()),
        ("replicaCount", i.replica_count.to_string()),
        ("readReplicasMode", output::wire(&i.read_replicas_mode)),
        ("endpoint", format!("{}:{}", i.host, i.port)),
        ("readEndpoint", read_endpoint(i)),
        ("authEnabled", i.auth_enabled.to_string()),
        (
            "transitEncryptionMode",
            output::wire(&i.transit_encryption_mode),
        ),
        ("locationId", i.location_id.clone()),
        (
            "alternativeLocationId",
            i.alternative_location_id.clone().unwrap_or_default(),
        ),
        ("redisVersion", i.redis_version.clone()),
        ("redisConfigs", output::map(&i.redis_configs)),
        ("authorizedNetwork", i.authorized_network.clone()),
        ("reservedIpRange", i.reserved_ip_range.clone()),
        (
            "secondaryIpRange",
            i.secondary_ip_range.clone().unwrap_or_default(),
        ),
        ("labels", output::map(&i.labels)),
        ("createTime", output::time(&i.create_time)),
        ("updateTime", output::time(&i.update_time)),
    ]);
    if !i.nodes.is_empty() {
        out.push_str("\n\nnodes:\n");
        out.push_str(&output::rows(
            &["ID", "ZONE", "ROLE", "ADDRESS", "STATE"],
            i.nodes.iter().map(|n| {
                vec![
                    n.id.clone(),
                    n.zone.clone(),
                    output::wire(&n.role),
                    format!("{}:{}", n.address, n.port),
                    output::wire(&n.state),
                ]
            }),
        ));
    }
    out
}

fn read_endpoint(i: &Instance) -> String {
    match (&i.read_endpoint, i.read_endpoint_port) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.clone(),
        _ => String::new(),
    }
}

/// `instances describe --metrics`: a row per node.
pub fn metrics_table(m: &InstanceNodeMetrics) -> String {
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let mib = |v: Option<i64>| {
        v.map(|v| format!("{:.1}", v as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "-".into())
    };
    let rows = output::rows(
        &[
            "NODE",
            "ZONE",
            "ROLE",
            "UP",
            "USED_MIB",
            "MAX_MIB",
            "MEM%",
            "CLIENTS",
            "COMMANDS",
            "HIT%",
            "EVICTED",
            "LAG_BYTES",
            "RESTARTS",
        ],
        m.nodes.iter().map(|x| {
            let pct = match (x.used_memory_bytes, x.maxmemory_bytes) {
                (Some(u), Some(max)) if max > 0 => format!("{:.1}", u as f64 * 100.0 / max as f64),
                _ => "-".into(),
            };
            vec![
                x.id.clone(),
                x.zone.clone(),
                x.role.as_ref().map(output::wire).unwrap_or_default(),
                if x.up { "yes" } else { "no" }.to_string(),
                mib(x.used_memory_bytes),
                mib(x.maxmemory_bytes),
                pct,
                n(x.connected_clients),
                n(x.commands_processed),
                x.hit_ratio
                    .map(|r| format!("{:.1}", r * 100.0))
                    .unwrap_or_else(|| "-".into()),
                n(x.evicted_keys),
                n(x.lag_bytes),
                n(x.restarts),
            ]
        }),
    );
    let when = m
        .nodes
        .iter()
        .filter_map(|x| x.report_time)
        .min()
        .map(|t| {
            format!(
                "\n\nas reported by the agents; oldest report {}",
                output::time(&t)
            )
        })
        .unwrap_or_default();
    format!("{}\n\n{rows}{when}", m.name)
}

/// The columns of `instances list`.
pub fn list_table(all: &[Instance]) -> String {
    output::rows(
        &[
            "NAME", "REGION", "TIER", "SIZE_GB", "REPLICAS", "ENDPOINT", "NETWORK", "STATE",
            "CREATED",
        ],
        all.iter().map(|i| {
            let region = i.name.split('/').nth(3).unwrap_or_default().to_string();
            vec![
                output::short(&i.name).to_string(),
                region,
                output::wire(&i.tier),
                i.memory_size_gb.to_string(),
                i.replica_count.to_string(),
                format!("{}:{}", i.host, i.port),
                output::short(&i.authorized_network).to_string(),
                output::wire(&i.state),
                output::time(&i.create_time),
            ]
        }),
    )
}

/// `REDISHOST=…`, `REDISPORT=…` and `REDISAUTH=…` lines, and for a TLS instance
/// (`ca_file` given, where its CA was written) `REDISTLS=1` and `REDISCACERT=…`, quoted
/// for the shell where a value needs it.
pub fn env_lines(
    inst: &Instance,
    auth: &str,
    ca_file: Option<&std::path::Path>,
    export: bool,
) -> String {
    let prefix = if export { "export " } else { "" };
    let mut vars = vec![
        ("REDISHOST", inst.host.clone()),
        ("REDISPORT", inst.port.to_string()),
        ("REDISAUTH", auth.to_string()),
    ];
    if let Some(ca) = ca_file {
        vars.push(("REDISTLS", "1".to_string()));
        vars.push(("REDISCACERT", ca.display().to_string()));
    }
    vars.iter()
        .map(|(k, v)| format!("{prefix}{k}={}\n", shell_quote(v)))
        .collect()
}
