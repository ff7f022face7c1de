//! A tiny RESP2 client for the benchmarks that talk to the engines themselves: one
//! persistent connection, one command at a time, replies other than arrays. Enough for
//! AUTH, SET, GET, PING and INFO; `redis-cli` per command would cost a process spawn
//! each and hide the connection's own fate (a reset during a failover).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for a command's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest bulk reply accepted (INFO is a few KiB).
const MAX_BULK: usize = 1 << 20;

/// A reply that is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `:1`.
    Int(i64),
    /// `$3\r\nabc`; `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
}

impl Reply {
    /// The reply as text (empty for a null bulk string).
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(b) => b
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Why a command did not get a reply it could use.
#[derive(Debug)]
pub enum RespError {
    /// The server answered with an error (`-READONLY You can't write…`).
    Server(String),
    /// Connect, write or read failed, or the peer closed the connection.
    Io(std::io::Error),
    /// No reply (or connection) within the time limit.
    Timeout,
    /// The server said something this client does not understand.
    Protocol(String),
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::Server(e) => write!(f, "server error: {e}"),
            RespError::Io(e) => write!(f, "i/o: {e}"),
            RespError::Timeout => f.write_str("timed out"),
            RespError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for RespError {}

impl From<std::io::Error> for RespError {
    fn from(e: std::io::Error) -> Self {
        RespError::Io(e)
    }
}

impl RespError {
    /// Whether the server refused a write because it is a replica.
    pub fn is_readonly(&self) -> bool {
        matches!(self, RespError::Server(e) if e.starts_with("READONLY"))
    }
}

/// One connection.
pub struct Resp<S = TcpStream> {
    stream: BufReader<S>,
}

impl Resp<TcpStream> {
    /// Connects to `host:port` (TCP_NODELAY) and sends `AUTH auth` when given.
    pub async fn connect(host: &str, port: u16, auth: Option<&str>) -> Result<Self, RespError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| RespError::Timeout)??;
        stream.set_nodelay(true)?;
        let mut c = Resp::new(stream);
        if let Some(a) = auth {
            c.cmd(&["AUTH", a]).await?;
        }
        Ok(c)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Resp<S> {
    /// A client over an open stream.
    pub fn new(stream: S) -> Self {
        Resp {
            stream: BufReader::new(stream),
        }
    }

    /// Sends one command and reads its reply.
    pub async fn cmd(&mut self, args: &[&str]) -> Result<Reply, RespError> {
        tokio::time::timeout(REPLY_TIMEOUT, self.exchange(args))
            .await
            .map_err(|_| RespError::Timeout)?
    }

    async fn exchange(&mut self, args: &[&str]) -> Result<Reply, RespError> {
        self.stream.get_mut().write_all(&encode(args)).await?;
        let mut line = Vec::new();
        self.stream.read_until(b'\n', &mut line).await?;
        let Some(line) = line.strip_suffix(b"\r\n") else {
            return Err(if line.is_empty() {
                RespError::Io(std::io::ErrorKind::UnexpectedEof.into())
            } else {
                RespError::Protocol(format!(
                    "unterminated line {:?}",
                    String::from_utf8_lossy(&line)
                ))
            });
        };
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| RespError::Protocol("empty line".into()))?;
        let rest = String::from_utf8_lossy(rest).into_owned();
        match kind {
            b'+' => Ok(Reply::Status(rest)),
            b'-' => Err(RespError::Server(rest)),
            b':' => rest
                .parse()
                .map(Reply::Int)
                .map_err(|_| RespError::Protocol(format!("bad integer {rest:?}"))),
            b'$' => {
                let len: i64 = rest
                    .parse()
                    .map_err(|_| RespError::Protocol(format!("bad length {rest:?}")))?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_BULK {
                    return Err(RespError::Protocol(format!("bulk of {len} bytes")));
                }
                let mut buf = vec![0u8; len + 2];
                self.stream.read_exact(&mut buf).await?;
                buf.truncate(len);
                Ok(Reply::Bulk(Some(buf)))
            }
            other => Err(RespError::Protocol(format!(
                "unsupported reply type {:?}",
                *other as char
            ))),
        }
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
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

    /// A client whose peer sends `reply` and records what it was sent.
    async fn answer(reply: &'static [u8], args: &[&str]) -> (Result<Reply, RespError>, Vec<u8>) {
        let (client, mut server) = tokio::io::duplex(4096);
        let mut c = Resp::new(client);
        let expected = encode(args).len();
        let peer = tokio::spawn(async move {
            let mut got = vec![0u8; expected];
            server.read_exact(&mut got).await.expect("the command");
            server.write_all(reply).await.expect("the reply");
            // The client reads what was written, then end of stream.
            server.shutdown().await.expect("shutdown");
            got
        });
        let r = c.cmd(args).await;
        drop(c);
        (r, peer.await.expect("peer"))
    }

    #[tokio::test]
    async fn commands_are_bulk_arrays_and_replies_parse() {
        let (r, sent) = answer(b"+OK\r\n", &["SET", "k", "v 1"]).await;
        assert_eq!(sent, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv 1\r\n");
        assert_eq!(r.expect("ok"), Reply::Status("OK".into()));
        let (r, _) = answer(b"$5\r\nab\r\nc\r\n", &["GET", "k"]).await;
        assert_eq!(r.expect("bulk").text(), "ab\r\nc");
        let (r, _) = answer(b"$-1\r\n", &["GET", "k"]).await;
        assert_eq!(r.expect("null"), Reply::Bulk(None));
        let (r, _) = answer(b":42\r\n", &["INCR", "k"]).await;
        assert_eq!(r.expect("int"), Reply::Int(42));
    }

    #[tokio::test]
    async fn errors_are_told_apart() {
        let (r, _) = answer(
            b"-READONLY You can't write against a read only replica.\r\n",
            &["SET", "k", "v"],
        )
        .await;
        let e = r.expect_err("an error reply");
        assert!(e.is_readonly(), "{e}");
        let (r, _) = answer(b"-NOAUTH Authentication required.\r\n", &["GET", "k"]).await;
        assert!(!r.expect_err("an error reply").is_readonly());
        let (r, _) = answer(b"", &["PING"]).await;
        assert!(matches!(r, Err(RespError::Io(_))), "{r:?}");
        let (r, _) = answer(b"*1\r\n", &["PING"]).await;
        assert!(matches!(r, Err(RespError::Protocol(_))), "{r:?}");
    }

    #[test]
    fn info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nrole_x:no\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "missing"), None);
    }
}
