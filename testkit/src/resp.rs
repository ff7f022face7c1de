//! The RESP client of the tests and benchmarks: the agent's own
//! (`cacheplane_node_agent::redis::client`), one persistent connection with a deadline
//! on every call, and what tests read from its replies.
//!
//! ```ignore
//! let mut c = connect(&host, port, Some(&auth)).await?;
//! let v = text(&c.call(&["GET", "k"]).await?);
//! ```

pub use cacheplane_node_agent::redis::acl::Login;
pub use cacheplane_node_agent::redis::client::{Client, ClientError, Reply};

/// Connects to `host:port` as an application does: `AUTH <auth>` (the tenant's `default`
/// user) when `auth` is given.
pub async fn connect(host: &str, port: u16, auth: Option<&str>) -> Result<Client, ClientError> {
    let login = auth.map(Login::tenant_auth);
    Client::connect(host, port, login.as_ref()).await
}

/// A reply as text: a status or bulk string, an integer in decimal; empty for a null.
pub fn text(reply: &Reply) -> String {
    match reply {
        Reply::Simple(s) => s.clone(),
        Reply::Int(i) => i.to_string(),
        Reply::Bulk(b) => b
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
        Reply::Array(items) => items
            .iter()
            .flatten()
            .map(text)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Sends one command over `c` and answers its reply as [`text`].
pub async fn call_text(c: &mut Client, args: &[&str]) -> Result<String, ClientError> {
    c.call(args).await.map(|r| text(&r))
}

/// Whether the server refused a write because it is a replica (`-READONLY …`).
pub fn is_readonly(e: &ClientError) -> bool {
    matches!(e, ClientError::Server(m) if m.starts_with("READONLY"))
}

/// The value of `key` in an `INFO` text (`role:master`).
pub fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_text_and_info_fields() {
        assert_eq!(text(&Reply::Bulk(Some(b"ab\r\nc".to_vec()))), "ab\r\nc");
        assert_eq!(text(&Reply::Bulk(None)), "");
        assert_eq!(text(&Reply::Int(42)), "42");
        assert!(is_readonly(&ClientError::Server(
            "READONLY You can't".into()
        )));
        assert!(!is_readonly(&ClientError::Server("NOAUTH".into())));
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nrole_x:no\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "missing"), None);
    }
}
