//! A small client of memcached's text protocol: what the agent needs to observe a node
//! (`version`, `stats`) and what tests and the bench need to use one (`set`, `get`).

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::net::dial::Dialer;

/// Longest wait for a connection or one answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest line the client reads (a `stats` line, a `VALUE` header).
const MAX_LINE: usize = 8 * 1024;

/// One connection to a memcached (or a discovery endpoint).
#[derive(Debug)]
pub struct McClient {
    stream: BufStream<TcpStream>,
}

fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

async fn timed<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "memcached did not answer in time"))?
}

impl McClient {
    /// Connects to `host:port` as `dialer` dials (in a node's namespace or here).
    pub async fn connect(dialer: &Dialer, host: &str, port: u16) -> io::Result<McClient> {
        let stream = timed(dialer.tcp(host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(McClient::over(stream))
    }

    /// A client over an open connection.
    pub fn over(stream: TcpStream) -> McClient {
        McClient {
            stream: BufStream::new(stream),
        }
    }

    /// Sends `line` (without its `\r\n`) and flushes.
    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(line.as_bytes()).await?;
        self.stream.write_all(b"\r\n").await?;
        self.stream.flush().await
    }

    /// Reads one line, without its `\r\n`.
    pub async fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.stream)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "memcached closed the connection",
            ));
        }
        if line.last() != Some(&b'\n') {
            return Err(protocol("an answer line is too long"));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| protocol("an answer line is not UTF-8"))
    }

    /// `version`: memcached's version, e.g. `1.6.18`.
    pub async fn version(&mut self) -> io::Result<String> {
        timed(async {
            self.send("version").await?;
            let line = self.read_line().await?;
            line.strip_prefix("VERSION ")
                .map(str::to_string)
                .ok_or_else(|| protocol(format!("version answered {line:?}")))
        })
        .await
    }

    /// `stats` (or `stats <group>`, e.g. `settings`): every `STAT name value`.
    pub async fn stats(&mut self, group: Option<&str>) -> io::Result<BTreeMap<String, String>> {
        let cmd = match group {
            Some(g) => format!("stats {g}"),
            None => "stats".to_string(),
        };
        timed(async {
            self.send(&cmd).await?;
            let mut out = BTreeMap::new();
            loop {
                let line = self.read_line().await?;
                if line == "END" {
                    return Ok(out);
                }
                let Some((name, value)) =
                    line.strip_prefix("STAT ").and_then(|s| s.split_once(' '))
                else {
                    return Err(protocol(format!("{cmd} answered {line:?}")));
                };
                out.insert(name.to_string(), value.to_string());
            }
        })
        .await
    }

    /// `set key 0 ttl <bytes>`: stores `value`; an error quotes a refusal.
    pub async fn set(&mut self, key: &str, value: &[u8], ttl: u32) -> io::Result<()> {
        timed(async {
            self.queue_set(key, value, ttl).await?;
            self.flush().await?;
            self.read_set_reply().await
        })
        .await
    }

    /// `get key`: its value, `None` when missing.
    pub async fn get(&mut self, key: &str) -> io::Result<Option<Vec<u8>>> {
        timed(async {
            self.queue_get(key).await?;
            self.flush().await?;
            self.read_get_reply().await
        })
        .await
    }

    /// Buffers a `set` without sending it (pipelining: [`McClient::flush`] sends what
    /// is buffered, then read one reply per command).
    pub async fn queue_set(&mut self, key: &str, value: &[u8], ttl: u32) -> io::Result<()> {
        let header = format!("set {key} 0 {ttl} {}\r\n", value.len());
        self.stream.write_all(header.as_bytes()).await?;
        self.stream.write_all(value).await?;
        self.stream.write_all(b"\r\n").await
    }

    /// Buffers a `get` without sending it.
    pub async fn queue_get(&mut self, key: &str) -> io::Result<()> {
        self.stream.write_all(b"get ").await?;
        self.stream.write_all(key.as_bytes()).await?;
        self.stream.write_all(b"\r\n").await
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    /// Reads the reply to a `set`: `STORED`, else an error quoting the reply.
    pub async fn read_set_reply(&mut self) -> io::Result<()> {
        match self.read_line().await?.as_str() {
            "STORED" => Ok(()),
            other => Err(protocol(format!("set answered {other:?}"))),
        }
    }

    /// Reads the reply to a one-key `get`: the value, or `None` when missing.
    pub async fn read_get_reply(&mut self) -> io::Result<Option<Vec<u8>>> {
        let line = self.read_line().await?;
        if line == "END" {
            return Ok(None);
        }
        let len: usize = line
            .strip_prefix("VALUE ")
            .and_then(|h| h.split(' ').nth(2))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| protocol(format!("get answered {line:?}")))?;
        let mut value = vec![0; len + 2];
        self.stream.read_exact(&mut value).await?;
        value.truncate(len);
        match self.read_line().await?.as_str() {
            "END" => Ok(Some(value)),
            other => Err(protocol(format!("get ended with {other:?}"))),
        }
    }
}
