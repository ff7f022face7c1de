//! The engine's users (Redis ACLs): the tenant's `default` user, which `AUTH <authString>`
//! logs in as, may run data commands but nothing that changes the engine's
//! configuration, address, persistence or replication; the agent's own user
//! (`cacheplane-agent`, password: the instance's admin secret, the same on every node) may
//! run everything, and replicas link to their primary as it. See
//! docs/architecture.md#locked-down-engine for the list and why.
//!
//! Specs without an admin secret (written before the lockdown) keep the old setup:
//! `requirepass`, the default user unrestricted. An engine started that way is locked down
//! online, when the agent applies a spec that has one (see [`apply`]).

use cacheplane_types::{NodeSpec, Secret};

use super::client::{Client, ClientError};
use super::conf::quote;

/// The agent's engine user.
pub const AGENT_USER: &str = "cacheplane-agent";

/// What the tenant's user may run, after `~* &*` (all keys and channels): everything but
/// `@admin` and `@dangerous`, and back from those what an application needs and cannot
/// hurt the engine with. `+@all` first, so commands of later versions start allowed
/// unless they are admin or dangerous.
pub const TENANT_RULES: &[&str] = &[
    "+@all",
    "-@admin",
    "-@dangerous",
    // Data commands Redis counts as dangerous because they can be slow.
    "+keys",
    "+sort",
    "+sort_ro",
    "+flushall",
    "+flushdb",
    "+swapdb",
    // Payloads of the tenant's connections are checked in full (`sanitize-dump-payload
    // clients`), so a crafted one cannot corrupt the engine.
    "+restore",
    // Read-only views of the engine.
    "+info",
    "+role",
    "+client|list",
    "+slowlog|get",
    "+slowlog|len",
    "+slowlog|reset",
    "+latency|doctor",
    "+latency|graph",
    "+latency|histogram",
    "+latency|history",
    "+latency|latest",
    "+latency|reset",
];

/// The login the agent uses with an engine.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Login {
    /// The engine user.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

impl Login {
    /// The tenant's login: the `default` user with AUTH string `auth`, as an
    /// application's `AUTH <authString>` logs in.
    pub fn tenant_auth(auth: &str) -> Login {
        Login {
            user: "default".into(),
            password: Secret::new(auth),
        }
    }

    /// The agent's own user, for specs that have an admin secret.
    fn agent(spec: &NodeSpec) -> Option<Login> {
        spec.admin_secret.as_ref().map(|s| Login {
            user: AGENT_USER.into(),
            password: s.clone(),
        })
    }

    /// The tenant's user (all an engine started without an admin secret has).
    fn tenant(spec: &NodeSpec) -> Option<Login> {
        spec.auth_string.as_deref().map(Login::tenant_auth)
    }
}

/// The logins to try with the engine of a node, best first: the agent's user of each
/// spec, then (for an engine started before the lockdown, or before an AUTH change) the
/// tenant's user of each. Empty when no spec has either: the engine asks for none.
pub fn logins(specs: &[&NodeSpec]) -> Vec<Login> {
    let mut out: Vec<Login> = Vec::new();
    let all = specs
        .iter()
        .filter_map(|s| Login::agent(s))
        .chain(specs.iter().filter_map(|s| Login::tenant(s)));
    for l in all {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// Connects to `host:port` with the first of `logins` the engine accepts (none when
/// `logins` is empty). A refused login (`WRONGPASS`) moves on to the next; any other
/// failure ends the attempt.
pub async fn connect(host: &str, port: u16, logins: &[Login]) -> Result<Client, ClientError> {
    first_accepted(logins, |l| Client::connect(host, port, l)).await
}

/// Opens a connection with `open` for each of `logins` in turn (once with none when
/// `logins` is empty) and answers the first the engine accepts. A refused login
/// (`WRONGPASS`) moves on to the next; any other failure ends the attempt.
pub async fn first_accepted<'a, F, Fut>(
    logins: &'a [Login],
    mut open: F,
) -> Result<Client, ClientError>
where
    F: FnMut(Option<&'a Login>) -> Fut,
    Fut: std::future::Future<Output = Result<Client, ClientError>>,
{
    let Some((last, first)) = logins.split_last() else {
        return open(None).await;
    };
    for l in first {
        match open(Some(l)).await {
            Err(ClientError::Server(_)) => continue,
            r => return r,
        }
    }
    open(Some(last)).await
}

/// The `user` lines of the default user in `redis.conf` and for `ACL SETUSER`: all keys
/// and channels, [`TENANT_RULES`], and the AUTH string (or no password when AUTH is off).
fn tenant_rules(spec: &NodeSpec) -> Vec<String> {
    let pass = match &spec.auth_string {
        Some(pw) => format!(">{pw}"),
        None => "nopass".into(),
    };
    let mut v: Vec<String> = ["reset", "on", &pass, "~*", "&*"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(TENANT_RULES.iter().map(|s| s.to_string()));
    v
}

fn agent_rules(secret: &Secret) -> Vec<String> {
    [
        "reset",
        "on",
        &format!(">{}", secret.expose()),
        "~*",
        "&*",
        "+@all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The `redis.conf` lines for the engine's users and how a replica authenticates to its
/// primary. Each holds a secret: the file is 0600 and never logged.
pub fn conf_lines(spec: &NodeSpec) -> Vec<String> {
    let Some(secret) = &spec.admin_secret else {
        // Before the lockdown: the AUTH string is everything.
        return match &spec.auth_string {
            Some(pw) => vec![
                format!("requirepass {}", quote(pw)),
                format!("masterauth {}", quote(pw)),
            ],
            None => Vec::new(),
        };
    };
    let line = |user: &str, rules: Vec<String>| {
        let rules: Vec<String> = rules.iter().map(|r| quote(r)).collect();
        format!("user {user} {}", rules.join(" "))
    };
    vec![
        line(AGENT_USER, agent_rules(secret)),
        line("default", tenant_rules(spec)),
        format!("masteruser {AGENT_USER}"),
        format!("masterauth {}", quote(secret.expose())),
        "sanitize-dump-payload clients".into(),
    ]
}

/// Why setting the users up online failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct AclError {
    /// The step, e.g. `ACL SETUSER default` (never its arguments: they hold secrets).
    pub what: &'static str,
    /// The engine's answer.
    #[source]
    pub source: ClientError,
}

async fn call(c: &mut Client, what: &'static str, args: &[&str]) -> Result<(), AclError> {
    c.call(args)
        .await
        .map(|_| ())
        .map_err(|source| AclError { what, source })
}

/// `text` with each of `secrets` replaced by `***`.
fn redact(mut text: String, secrets: &[&str]) -> String {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(s, "***");
    }
    text
}

/// Brings the users of the running engine behind `c` to `spec`: the agent's user first,
/// then this connection logs in as it (so it keeps control once the tenant's user is
/// restricted), then the tenant's user, then (replicas) how the replica authenticates to
/// its primary. Works on an engine started before the lockdown, whose default user may
/// still run everything: that is how such an engine is locked down without a restart.
/// Its replicas' links, made as the default user, break once it is restricted and come
/// back as soon as their own agents switched them to the agent's user (the same pass of
/// the same config).
/// An error names the step only, and any secret the engine quotes back (`ACL SETUSER`
/// errors quote the rule they refuse) is replaced by `***`.
pub async fn apply(c: &mut Client, spec: &NodeSpec) -> Result<(), AclError> {
    let secrets = [
        spec.admin_secret.as_ref().map_or("", |s| s.expose()),
        spec.auth_string.as_deref().unwrap_or(""),
    ];
    apply_users(c, spec).await.map_err(|e| AclError {
        what: e.what,
        source: match e.source {
            ClientError::Server(m) => ClientError::Server(redact(m, &secrets)),
            other => other,
        },
    })
}

async fn apply_users(c: &mut Client, spec: &NodeSpec) -> Result<(), AclError> {
    let Some(secret) = &spec.admin_secret else {
        let pw = spec.auth_string.as_deref().unwrap_or("");
        call(
            c,
            "CONFIG SET masterauth",
            &["CONFIG", "SET", "masterauth", pw],
        )
        .await?;
        return call(
            c,
            "CONFIG SET requirepass",
            &["CONFIG", "SET", "requirepass", pw],
        )
        .await;
    };
    let setuser = |user: &'static str, rules: Vec<String>| {
        let mut args = vec!["ACL".to_string(), "SETUSER".into(), user.into()];
        args.extend(rules);
        args
    };
    let agent = setuser(AGENT_USER, agent_rules(secret));
    let refs: Vec<&str> = agent.iter().map(String::as_str).collect();
    call(c, "ACL SETUSER cacheplane-agent", &refs).await?;
    call(
        c,
        "AUTH cacheplane-agent",
        &["AUTH", AGENT_USER, secret.expose()],
    )
    .await?;
    let tenant = setuser("default", tenant_rules(spec));
    let refs: Vec<&str> = tenant.iter().map(String::as_str).collect();
    call(c, "ACL SETUSER default", &refs).await?;
    let sanitize = ["CONFIG", "SET", "sanitize-dump-payload", "clients"];
    call(c, "CONFIG SET sanitize-dump-payload", &sanitize).await?;
    // Every node, primaries too: any may become a replica by a failover.
    call(
        c,
        "CONFIG SET masteruser",
        &["CONFIG", "SET", "masteruser", AGENT_USER],
    )
    .await?;
    call(
        c,
        "CONFIG SET masterauth",
        &["CONFIG", "SET", "masterauth", secret.expose()],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_prefer_the_agents_user_and_fall_back_to_the_auth_string() {
        let mut old: NodeSpec = serde_json::from_str(
            r#"{"nodeId":"00000000-0000-0000-0000-000000000000","instance":"i","engineVersion":"REDIS_7_0",
                "role":"PRIMARY","address":"127.0.0.1","port":6379,"maxmemoryBytes":1,"redisConfigs":{},
                "authString":"pw"}"#,
        )
        .expect("a spec from before the lockdown still parses");
        assert_eq!(old.admin_secret, None);
        let mut new = old.clone();
        new.admin_secret = Some(Secret::new("adm"));
        let l = logins(&[&new, &old]);
        let users: Vec<&str> = l.iter().map(|l| l.user.as_str()).collect();
        assert_eq!(users, ["cacheplane-agent", "default"]);
        assert_eq!(l[0].password.expose(), "adm");
        old.auth_string = None;
        assert!(logins(&[&old]).is_empty());
        assert!(
            !format!("{:?}", l[0]).contains("adm"),
            "Debug hides the secret"
        );
    }

    #[test]
    fn errors_never_quote_a_password() {
        let msg = "ERR Error in ACL SETUSER modifier '>hunter22': Syntax error".to_string();
        let got = redact(msg, &["hunter22", ""]);
        assert_eq!(
            got,
            "ERR Error in ACL SETUSER modifier '>***': Syntax error"
        );
    }

    #[test]
    fn conf_lines_lock_the_default_user_down() {
        let mut s: NodeSpec = serde_json::from_str(
            r#"{"nodeId":"00000000-0000-0000-0000-000000000000","instance":"i","engineVersion":"REDIS_7_0",
                "role":"REPLICA","address":"127.0.0.1","port":6379,"maxmemoryBytes":1,"redisConfigs":{},
                "authString":"pw","adminSecret":"adm"}"#,
        )
        .expect("spec");
        let lines = conf_lines(&s);
        assert!(
            lines[0].starts_with("user cacheplane-agent \"reset\" \"on\" \">adm\""),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("user default \"reset\" \"on\" \">pw\" \"~*\" \"&*\" \"+@all\" \"-@admin\" \"-@dangerous\""), "{lines:?}");
        assert!(lines.contains(&"masteruser cacheplane-agent".to_string()));
        assert!(lines.contains(&"masterauth \"adm\"".to_string()));
        assert!(!lines.iter().any(|l| l.starts_with("requirepass")));
        s.auth_string = None;
        assert!(conf_lines(&s)[1].contains("\"nopass\""));
        s.admin_secret = None;
        assert!(conf_lines(&s).is_empty());
    }
}
