//! A small RESP2 client: just what the agent says to its engines (AUTH, PING, INFO,
//! CONFIG SET, REPLICAOF, SHUTDOWN). Every call has a deadline.

use std::time::Duration;

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

use super::acl::Login;

/// How long one command (or the connection) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest reply line or bulk string the agent accepts (INFO is a few KB).
const MAX_REPLY: usize = 1 << 20;

/// Why a call to an engine failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be made or broke.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The engine answered with an error, e.g. `ERR …`.
    #[error("{0}")]
    Server(String),
    /// The answer was not RESP as expected.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// True for `-LOADING` (the engine is reading its dataset) and `-BUSY` errors.
    pub fn is_busy(&self) -> bool {
        matches!(self, ClientError::Server(m) if m.starts_with("LOADING") || m.starts_with("BUSY"))
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `:42`.
    Int(i64),
    /// `$…`, `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*…`, `None` for the null array.
    Array(Option<Vec<Reply>>),
}

/// The byte stream under a [`Client`]: TCP, or the engine's Unix socket.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug> Stream for T {}

/// One connection to an engine.
#[derive(Debug)]
pub struct Client {
    conn: BufReader<Box<dyn Stream>>,
}

impl Client {
    /// Connects to `host:port` and, when `auth` is given, authenticates as its user
    /// (`AUTH user password`).
    pub async fn connect(
        host: &str,
        port: u16,
        auth: Option<&Login>,
    ) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ClientError::Timeout(CALL_TIMEOUT))??;
        Client::over_tcp(stream, auth).await
    }

    /// A client over an established TCP connection (e.g. one opened in a network
    /// namespace: [`crate::net::dial::Dialer`]); authenticates when `auth` is given.
    pub async fn over_tcp(stream: TcpStream, auth: Option<&Login>) -> Result<Client, ClientError> {
        stream.set_nodelay(true)?;
        Client::over(Box::new(stream), auth).await
    }

    /// Authenticates (when `auth` is given) over an open `stream`: how the TLS dialer
    /// ([`super::tls::over_tls`]) hands its connection over.
    pub(crate) async fn over_stream<S>(
        stream: S,
        auth: Option<&Login>,
    ) -> Result<Client, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug + 'static,
    {
        Client::over(Box::new(stream), auth).await
    }

    /// Connects to the Unix socket at `path` (an engine of this host: see
    /// [`super::local::connect`]) and, when `auth` is given, authenticates.
    pub async fn connect_unix(path: &Path, auth: Option<&Login>) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(CALL_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| ClientError::Timeout(CALL_TIMEOUT))??;
        Client::over(Box::new(stream), auth).await
    }

    async fn over(stream: Box<dyn Stream>, auth: Option<&Login>) -> Result<Client, ClientError> {
        let mut c = Client {
            conn: BufReader::new(stream),
        };
        if let Some(l) = auth {
            c.call(&["AUTH", &l.user, l.password.expose()]).await?;
        }
        Ok(c)
    }

    /// Sends one command and reads its reply; an error reply is `ClientError::Server`.
    pub async fn call(&mut self, args: &[&str]) -> Result<Reply, ClientError> {
        let mut req = Vec::with_capacity(64);
        encode(&mut req, args);
        tokio::time::timeout(CALL_TIMEOUT, async {
            self.conn.get_mut().write_all(&req).await?;
            read_reply(&mut self.conn).await
        })
        .await
        .map_err(|_| ClientError::Timeout(CALL_TIMEOUT))?
    }

    /// `REPLCONF GETACK *` to a replica: it sends its primary an ACK at once. Redis never
    /// answers this command (it is meant for the replication link), so a `PING` follows
    /// it on the same connection and its `PONG` says the request was taken.
    pub async fn replconf_getack(&mut self) -> Result<(), ClientError> {
        let mut req = Vec::with_capacity(64);
        encode(&mut req, &["REPLCONF", "GETACK", "*"]);
        encode(&mut req, &["PING"]);
        let reply = tokio::time::timeout(CALL_TIMEOUT, async {
            self.conn.get_mut().write_all(&req).await?;
            read_reply(&mut self.conn).await
        })
        .await
        .map_err(|_| ClientError::Timeout(CALL_TIMEOUT))??;
        match reply {
            Reply::Simple(s) if s == "PONG" => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "GETACK, PING answered {other:?}"
            ))),
        }
    }

    /// `PING`.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        match self.call(&["PING"]).await? {
            Reply::Simple(s) if s == "PONG" => Ok(()),
            other => Err(ClientError::Protocol(format!("PING answered {other:?}"))),
        }
    }

    /// `INFO` (the default sections, which work on every version), as text.
    pub async fn info(&mut self) -> Result<String, ClientError> {
        match self.call(&["INFO"]).await? {
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => Err(ClientError::Protocol(format!("INFO answered {other:?}"))),
        }
    }

    /// `CONFIG SET key value`.
    pub async fn config_set(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.call(&["CONFIG", "SET", key, value]).await.map(|_| ())
    }

    /// `REPLICAOF host port`, or `REPLICAOF NO ONE` for `None`.
    pub async fn replicaof(&mut self, primary: Option<(&str, u16)>) -> Result<(), ClientError> {
        match primary {
            Some((host, port)) => self.call(&["REPLICAOF", host, &port.to_string()]).await,
            None => self.call(&["REPLICAOF", "NO", "ONE"]).await,
        }
        .map(|_| ())
    }

    /// Waits, without a deadline, until the engine closes this connection (EOF or a
    /// broken connection). On a connection that sends nothing this is the moment the
    /// engine exits, or drops the client (`CLIENT KILL`, a client timeout).
    pub async fn closed(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            match self.conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// `SHUTDOWN NOSAVE`: the engine exits without writing its dataset. The connection
    /// closing is the expected answer.
    pub async fn shutdown_nosave(mut self) -> Result<(), ClientError> {
        match self.call(&["SHUTDOWN", "NOSAVE"]).await {
            Ok(_) | Err(ClientError::Io(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Appends `args` to `req` as one RESP command (an array of bulk strings).
fn encode(req: &mut Vec<u8>, args: &[&str]) {
    req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
}

async fn read_line(r: &mut BufReader<Box<dyn Stream>>) -> Result<String, ClientError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_REPLY as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(ClientError::Protocol("reply line too long or cut".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| ClientError::Protocol("reply line is not UTF-8".into()))
}

fn parse_len(s: &str) -> Result<i64, ClientError> {
    s.parse()
        .map_err(|_| ClientError::Protocol(format!("bad length {s:?}")))
}

async fn read_reply(r: &mut BufReader<Box<dyn Stream>>) -> Result<Reply, ClientError> {
    // Nested arrays only come from commands the agent does not send; one level suffices.
    let line = read_line(r).await?;
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Err(ClientError::Server(rest.to_string())),
        ":" => Ok(Reply::Int(parse_len(rest)?)),
        "$" => read_bulk(r, parse_len(rest)?).await.map(Reply::Bulk),
        "*" => {
            let n = parse_len(rest)?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let mut items = Vec::new();
            for _ in 0..n.min(1024) {
                let line = read_line(r).await?;
                let (k, rest) = line.split_at(line.len().min(1));
                items.push(match k {
                    "+" => Reply::Simple(rest.to_string()),
                    ":" => Reply::Int(parse_len(rest)?),
                    "$" => Reply::Bulk(read_bulk(r, parse_len(rest)?).await?),
                    _ => return Err(ClientError::Protocol(format!("unexpected item {line:?}"))),
                });
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(ClientError::Protocol(format!("unexpected reply {line:?}"))),
    }
}

async fn read_bulk(
    r: &mut BufReader<Box<dyn Stream>>,
    len: i64,
) -> Result<Option<Vec<u8>>, ClientError> {
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| ClientError::Protocol("bulk length".into()))?;
    if len > MAX_REPLY {
        return Err(ClientError::Protocol(format!(
            "bulk of {len} bytes is too long"
        )));
    }
    let mut buf = vec![0u8; len + 2];
    r.read_exact(&mut buf).await?;
    if !buf.ends_with(b"\r\n") {
        return Err(ClientError::Protocol("bulk not ended by CRLF".into()));
    }
    buf.truncate(len);
    Ok(Some(buf))
}
