//! The Cacheplane control-plane server: REST API over Postgres, address allocation,
//! placement, long-running operations and the agent protocol.

pub mod alloc;
pub mod auth;
pub mod background;
pub mod catalog;
pub mod config;
pub mod connectors;
pub mod db;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod history;
pub mod hosts;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod instances;
pub mod limits;
pub mod memcache;
pub mod metrics;
pub mod networks;
pub mod notify;
pub mod operations;
pub mod paging;
pub mod pools;
pub mod quotas;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod tokens;

use std::sync::Arc;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::notify::Notifier;
use crate::state::AppState;

/// The migrations, embedded at build time and applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Sets up `tracing` to stderr, as text or JSON; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Connects, migrates, bootstraps the admin token and starts the change notifier: the
/// state every handler and the background worker share. `run` serves it; tests drive
/// `http::app(state)` in-process.
pub async fn connect(config: Config, shutdown: &CancellationToken) -> anyhow::Result<AppState> {
    let pool = PgPoolOptions::new()
        .max_connections(config.db_pool)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(config.database_url.expose())
        .await
        .context("connecting to Postgres")?;
    // Opened lazily: a replica without agents holds no connection for them.
    let agent_pool = PgPoolOptions::new()
        .max_connections(config.db_agent_pool.max(1))
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_lazy(config.database_url.expose())
        .context("the agents' Postgres pool")?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    auth::bootstrap_admin_token(&pool, config.admin_token.expose()).await?;
    let notifier = Notifier::start(&pool, shutdown.clone()).await?;
    Ok(AppState {
        pool,
        agent_pool,
        tokens: Arc::new(auth::TokenCache::new(config.token_cache_ttl)),
        limits: Arc::new(limits::Limits::new(&config)),
        retention: Arc::new(background::retention::Schedule::default()),
        config: Arc::new(config),
        notifier,
        grace: Arc::new(background::grace::Grace::new()),
        metrics: Arc::new(metrics::Metrics::new()),
    })
}

/// Connects (see [`connect`]) and serves until SIGTERM or Ctrl-C, with the background
/// worker beside the handlers.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let state = connect(config, &shutdown).await?;
    let worker = tokio::spawn(background::run_worker(state.clone(), shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("binding {}", state.config.listen))?;
    tracing::info!(listen = %state.config.listen, "serving");
    let header_read_timeout = state.config.header_read_timeout;
    let app = http::app(state);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        // Ends the long-polls too (they watch the notifier's token).
        stop.cancel();
    });
    server::serve(listener, app, header_read_timeout, shutdown.clone()).await;
    shutdown.cancel();
    let _ = worker.await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
