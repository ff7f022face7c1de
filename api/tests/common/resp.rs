//! A minimal RESP client for tests that need a long-lived connection (a writer that
//! keeps writing through a failover), where spawning `redis-cli` per command is too slow.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One connection.
pub struct Resp {
    stream: BufReader<TcpStream>,
}

impl Resp {
    /// Connects (1 s timeout) and sends AUTH when given.
    pub async fn connect(host: &str, port: u16, auth: Option<&str>) -> Result<Resp, String> {
        let stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect((host, port)))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Resp {
            stream: BufReader::new(stream),
        };
        if let Some(a) = auth {
            c.cmd(&["AUTH", a]).await?;
        }
        Ok(c)
    }

    /// Sends a command; `Ok` with the reply as text, `Err` with an error reply (e.g.
    /// `READONLY …`) or an I/O failure.
    pub async fn cmd(&mut self, args: &[&str]) -> Result<String, String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let io = async {
            self.stream.get_mut().write_all(out.as_bytes()).await?;
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            let line = line.trim_end().to_string();
            if let Some(len) = line.strip_prefix('$') {
                let len: i64 = len.parse().unwrap_or(-1);
                if len < 0 {
                    return Ok(Ok(String::new()));
                }
                let mut buf = vec![0u8; len as usize + 2];
                self.stream.read_exact(&mut buf).await?;
                buf.truncate(len as usize);
                return Ok(Ok(String::from_utf8_lossy(&buf).into_owned()));
            }
            Ok::<_, std::io::Error>(match line.chars().next() {
                Some('-') => Err(line[1..].to_string()),
                Some(_) => Ok(line[1..].to_string()),
                None => Err("connection closed".to_string()),
            })
        };
        match tokio::time::timeout(Duration::from_secs(2), io).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("reply timed out".to_string()),
        }
    }
}
