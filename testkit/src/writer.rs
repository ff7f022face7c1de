//! A client that writes through an instance's `host:port` as an application would, and
//! remembers what happened: `SET <prefix>:i i` every ~10 ms with AUTH, reconnecting
//! after any error, recording each acknowledged `i`, each failed attempt (with the error
//! text: `READONLY`, `NOREPLICAS`, a refused connection, no answer within the client's
//! 2 s deadline) and when. At the end [`WriteLog::lost`] reads every acknowledged key
//! back from the current primary and answers the ones that are gone.
//!
//! The writer runs on a thread of its own (with its own runtime), so that a test's
//! blocking calls (`redis-cli`, `kill`) never delay it.
//!
//! ```ignore
//! let writer = Writer::start(&host, port, &auth, "w");
//! writer.wait_acked(50, Duration::from_secs(10)).await;
//! // … break something …
//! let log = writer.stop();
//! let lost = log.lost(&host, port, &auth).await.unwrap();
//! eprintln!("{}", log.summary());
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::resp::{self, call_text, text, Client, Reply};

/// The pause between two attempts.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(10);

/// What a writer saw.
#[derive(Debug, Clone)]
pub struct WriteLog {
    /// The key prefix (`<prefix>:i`).
    pub prefix: String,
    /// When the writer started.
    pub started: Instant,
    /// Acknowledged writes: `i` and when the `OK` arrived.
    pub acked: Vec<(u64, Instant)>,
    /// Failed attempts: `i`, when, and the error text.
    pub failed: Vec<(u64, Instant, String)>,
}

impl WriteLog {
    fn new(prefix: &str) -> WriteLog {
        WriteLog {
            prefix: prefix.to_string(),
            started: Instant::now(),
            acked: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// The key of write `i`.
    pub fn key(&self, i: u64) -> String {
        format!("{}:{i}", self.prefix)
    }

    /// Acknowledged writes whose `OK` arrived in `[from, to]`.
    pub fn acked_between(&self, from: Instant, to: Instant) -> usize {
        self.acked
            .iter()
            .filter(|(_, t)| *t >= from && *t <= to)
            .count()
    }

    /// The first acknowledgement after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.acked.iter().map(|(_, at)| *at).find(|at| *at > t)
    }

    /// When write `i` was acknowledged, if it was.
    pub fn acked_at(&self, i: u64) -> Option<Instant> {
        self.acked.iter().find(|(n, _)| *n == i).map(|(_, t)| *t)
    }

    /// The longest stretch without an acknowledgement (between two, or from the first
    /// failure after an acknowledgement to the next one): how long writes were
    /// unavailable at worst.
    pub fn longest_gap(&self) -> Duration {
        self.acked
            .windows(2)
            .map(|w| w[1].1.duration_since(w[0].1))
            .max()
            .unwrap_or_default()
    }

    /// Failed attempts by kind (the error text up to its first `:` or space, e.g.
    /// `READONLY`, `NOREPLICAS`, `connection`, `no answer within 2s`), with a count and
    /// one example each.
    pub fn failures_by_kind(&self) -> BTreeMap<String, (usize, String)> {
        let mut out: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (_, _, e) in &self.failed {
            let kind = if e.starts_with("no answer") {
                e.clone()
            } else {
                e.split([':', ' ']).next().unwrap_or(e).to_string()
            };
            let entry = out.entry(kind).or_insert_with(|| (0, e.clone()));
            entry.0 += 1;
        }
        out
    }

    /// One line of figures: attempts, acknowledged, failed (by kind), longest gap.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self
            .failures_by_kind()
            .iter()
            .map(|(k, (n, example))| format!("{n}× {k} (e.g. {example:?})"))
            .collect();
        format!(
            "writer {}: {} attempts over {:?}, {} acknowledged, {} failed [{}], longest gap \
             between acknowledgements {:?}",
            self.prefix,
            self.acked.len() + self.failed.len(),
            self.acked
                .last()
                .map(|(_, t)| t.duration_since(self.started))
                .unwrap_or_default(),
            self.acked.len(),
            self.failed.len(),
            kinds.join(", "),
            self.longest_gap()
        )
    }

    /// Reads every acknowledged key back through `host:port` (the current primary) and
    /// answers the writes that are gone or hold another value. `Err` when the instance
    /// cannot be read (after retrying for 10 s).
    pub async fn lost(&self, host: &str, port: u16, auth: &str) -> Result<Vec<u64>, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.read_back(host, port, auth).await {
                Ok(lost) => return Ok(lost),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("reading back {} keys: {e}", self.acked.len()))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn read_back(&self, host: &str, port: u16, auth: &str) -> Result<Vec<u64>, String> {
        let mut c = resp::connect(host, port, Some(auth))
            .await
            .map_err(|e| e.to_string())?;
        let mut lost = Vec::new();
        for chunk in self.acked.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|(i, _)| self.key(*i)).collect();
            let mut args = vec!["MGET"];
            args.extend(keys.iter().map(String::as_str));
            let reply = c.call(&args).await.map_err(|e| e.to_string())?;
            let Reply::Array(Some(values)) = reply else {
                return Err(format!("MGET answered {reply:?}"));
            };
            if values.len() != chunk.len() {
                return Err(format!(
                    "MGET of {} keys answered {} values",
                    chunk.len(),
                    values.len()
                ));
            }
            for ((i, _), v) in chunk.iter().zip(values.iter()) {
                if text(v) != i.to_string() {
                    lost.push(*i);
                }
            }
        }
        Ok(lost)
    }
}

/// A running writer (see the module's documentation). Dropping it stops it.
pub struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriteLog>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing `SET <prefix>:i i` through `host:port` with `auth`.
    pub fn start(host: &str, port: u16, auth: &str, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(WriteLog::new(prefix)));
        let (host, auth) = (host.to_string(), auth.to_string());
        let (s, l) = (stop.clone(), log.clone());
        let thread = std::thread::Builder::new()
            .name(format!("writer-{prefix}"))
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building the writer's runtime")
                    .block_on(write_loop(host, port, auth, s, l));
            })
            .expect("starting the writer thread");
        Writer {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// A copy of what it saw so far.
    pub fn snapshot(&self) -> WriteLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `(acknowledged, failed)` so far.
    pub fn counts(&self) -> (usize, usize) {
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        (l.acked.len(), l.failed.len())
    }

    /// Waits until at least `n` writes are acknowledged; panics after `limit` with what
    /// the writer saw.
    pub async fn wait_acked(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.counts().0 < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} writes acknowledged after {limit:?}: {}",
                self.snapshot().summary()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops writing (the attempt under way finishes, 2 s at most) and answers the log.
    pub fn stop(mut self) -> WriteLog {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.halt();
    }
}

async fn write_loop(
    host: String,
    port: u16,
    auth: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriteLog>>,
) {
    let prefix = log.lock().unwrap_or_else(|e| e.into_inner()).prefix.clone();
    let mut conn: Option<Client> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        if conn.is_none() {
            match resp::connect(&host, port, Some(&auth)).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let now = Instant::now();
                    log.lock().unwrap_or_else(|e| e.into_inner()).failed.push((
                        i,
                        now,
                        format!("connect: {e}"),
                    ));
                    tokio::time::sleep(WRITE_INTERVAL).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let result = call_text(c, &["SET", &format!("{prefix}:{i}"), &i.to_string()]).await;
        let now = Instant::now();
        {
            let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(ok) if ok == "OK" => l.acked.push((i, now)),
                Ok(other) => l
                    .failed
                    .push((i, now, format!("unexpected answer {other:?}"))),
                Err(e) => {
                    l.failed.push((i, now, e.to_string()));
                    conn = None;
                }
            }
        }
        tokio::time::sleep(WRITE_INTERVAL).await;
    }
}
