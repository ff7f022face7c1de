//! `cachectl operations …`, and the waiting every mutating command does.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use cacheplane_types::{ListOperationsResponse, Operation};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;

use super::list::list;
use super::{parse_duration, Ctx};
use crate::error::{Error, Result};
use crate::output::{self, emit};

/// Long-running operations: every create, update, delete and failover is one.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Shows an operation.
    #[command(after_help = "Examples:\n  \
        cachectl operations describe 0b6f…\n  \
        cachectl operations describe projects/my-project/locations/local/operations/0b6f… --format json")]
    Describe {
        /// The operation's id, or its full name.
        operation: String,
    },
    /// Lists the operations of the project in the region (every region when none is set),
    /// newest first.
    #[command(after_help = "Examples:\n  \
        cachectl operations list --limit 5\n  \
        cachectl operations list --region - --format json")]
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Waits until an operation is done, then shows it. Exits 3 if it failed and 4 if it
    /// is still running after --timeout.
    #[command(after_help = "Examples:\n  \
        cachectl operations wait 0b6f…\n  \
        cachectl operations wait 0b6f… --timeout 2m")]
    Wait {
        /// The operation's id, or its full name.
        operation: String,
        /// Give up after this long (e.g. 90s, 10m); the operation goes on.
        #[arg(long, default_value = "20m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// The flags of every command that starts an operation.
#[derive(Debug, Clone, clap::Args)]
pub struct LroArgs {
    /// Print the operation at once instead of waiting for it
    /// (`cachectl operations wait` waits later).
    #[arg(long = "async")]
    pub no_wait: bool,
    /// Stop waiting after this long (e.g. 90s, 10m) and exit 4; the operation goes on.
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A UUID that makes a retry of this very request return the first one's operation
    /// instead of starting another [default: a new one per command, so that cachectl
    /// itself may send the request again to another API replica].
    #[arg(long)]
    pub request_id: Option<String>,
    /// The UUID made for this command when --request-id is not given.
    #[arg(skip)]
    generated: std::sync::OnceLock<String>,
}

impl LroArgs {
    /// The `requestId` query parameter: --request-id, else a UUID made once for this
    /// command (the same on every attempt, so a repeat is answered with the first
    /// request's operation).
    pub fn request_id_query(&self) -> Vec<(&'static str, &str)> {
        let id = match &self.request_id {
            Some(id) => id.as_str(),
            None => self
                .generated
                .get_or_init(|| uuid::Uuid::new_v4().to_string()),
        };
        vec![("requestId", id)]
    }
}

impl Default for LroArgs {
    fn default() -> LroArgs {
        LroArgs {
            no_wait: false,
            timeout: DEFAULT_TIMEOUT,
            request_id: None,
            generated: std::sync::OnceLock::new(),
        }
    }
}

/// How long a mutating command waits for its operation by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Runs `operations …`.
pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    match cmd {
        Command::Describe { operation } => {
            let l = ctx.located("operations", &operation)?;
            let op: Operation = ctx.client.get(&l.path("operations"), &[]).await?;
            print(ctx, &op)
        }
        Command::List { limit } => {
            let path = ctx.list_path("operations")?;
            let ops = list::<ListOperationsResponse>(ctx, &path, &[], limit).await?;
            emit(ctx.format, &ops, |ops| table(ops))
        }
        Command::Wait { operation, timeout } => {
            let l = ctx.located("operations", &operation)?;
            let op: Operation = ctx.client.get(&l.path("operations"), &[]).await?;
            let op = wait_done(ctx, op, timeout).await?;
            print(ctx, &op)?;
            check(op).map(drop)
        }
    }
}

/// Prints an operation in the chosen format.
pub fn print(ctx: &Ctx, op: &Operation) -> Result<()> {
    emit(ctx.format, op, |op| {
        let m = &op.metadata;
        output::fields([
            ("name", op.name.clone()),
            ("verb", m.verb.clone()),
            ("target", m.target.clone()),
            ("done", op.done.to_string()),
            ("progress", format!("{}%", m.progress)),
            ("statusDetail", m.status_detail.clone()),
            (
                "error",
                op.error.as_ref().map(error_line).unwrap_or_default(),
            ),
            ("createTime", output::time(&m.create_time)),
            (
                "endTime",
                m.end_time.as_ref().map(output::time).unwrap_or_default(),
            ),
        ])
    })
}

fn error_line(e: &cacheplane_types::Status) -> String {
    format!("{} {}", e.status, e.message)
}

fn table(ops: &[Operation]) -> String {
    output::rows(
        &[
            "ID", "VERB", "TARGET", "DONE", "PROGRESS", "STATUS", "CREATED",
        ],
        ops.iter().map(|op| {
            let status = match &op.error {
                Some(e) => error_line(e),
                None => op.metadata.status_detail.clone(),
            };
            vec![
                output::short(&op.name).to_string(),
                op.metadata.verb.clone(),
                output::short(&op.metadata.target).to_string(),
                op.done.to_string(),
                format!("{}%", op.metadata.progress),
                status,
                output::time(&op.metadata.create_time),
            ]
        }),
    )
}

/// An operation that ended with an error becomes that error (exit 3).
pub fn check(op: Operation) -> Result<Operation> {
    match op.error {
        Some(status) => Err(Error::Api {
            context: Some(format!("operation {} failed", op.name)),
            status,
        }),
        None => Ok(op),
    }
}

/// Waits until `op` is done (or `timeout` passes: exit 4), with a spinner showing its
/// status detail when stderr is a terminal; an operation that failed is an error.
pub async fn wait(ctx: &Ctx, op: Operation, timeout: Duration) -> Result<Operation> {
    check(wait_done(ctx, op, timeout).await?)
}

/// Like `wait`, but returns a failed operation as it is.
async fn wait_done(ctx: &Ctx, mut op: Operation, timeout: Duration) -> Result<Operation> {
    let spinner = std::io::stderr().is_terminal().then(spinner);
    // Each call long-polls the server's wait method, which answers as soon as the
    // operation is done. On a terminal the polls are short so that the spinner's status
    // detail stays current; otherwise they are as long as the server allows by default.
    let poll = if spinner.is_some() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(30)
    };
    let deadline = Instant::now() + timeout;
    let result = loop {
        if let Some(s) = &spinner {
            s.set_message(format!(
                "{} {}: {} ({}%)",
                op.metadata.verb,
                output::short(&op.metadata.target),
                op.metadata.status_detail,
                op.metadata.progress
            ));
        }
        if op.done {
            break Ok(op);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(Error::Timeout(format!(
                "operation {} is still running after {}: `cachectl operations wait {}` \
                 keeps waiting",
                op.name,
                human(timeout),
                op.name
            )));
        }
        let step = poll.min(left).max(Duration::from_millis(1));
        let step_ms = format!("{}ms", step.as_millis());
        let mut path = vec!["v1"];
        path.extend(op.name.split('/'));
        path.push("wait");
        let next: Result<Operation> = ctx
            .client
            .call(
                Method::POST,
                &path,
                &[("timeout", step_ms.as_str())],
                None::<&()>,
                step + Duration::from_secs(30),
            )
            .await;
        match next {
            Ok(next) => op = next,
            Err(e) => break Err(e),
        }
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    result
}

fn spinner() -> ProgressBar {
    let s = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    s.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    s.enable_steady_tick(Duration::from_millis(120));
    s
}

/// `90s`, `20m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && d == Duration::from_secs(s / 60 * 60) {
        format!("{}m", s / 60)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}
