//! Persistence: every SQL statement of the server, one module per resource. Each module
//! owns its tables' SQL and offers verb-named functions that take and return typed rows;
//! the services above never write SQL.
//!
//! Queries are checked at run time (`sqlx::query_as` with `#[derive(FromRow)]`), not at
//! compile time with the `query!` macros: the build needs neither a live database nor
//! committed offline data, and the instance filter is assembled with `QueryBuilder`,
//! which the macros cannot check anyway. The integration tests run every statement
//! against a real Postgres.
//!
//! Text columns that hold an enum (states, tiers, roles, verbs, token kinds) are parsed
//! once, when the row is read, into the types of `cacheplane_types`
//! (`#[sqlx(try_from = "String")]`). A value the code does not know is a decode error,
//! answered as an internal error, never replaced by a default.
//!
//! Writes that others wait for announce themselves: a new or changed operation and a
//! bumped host generation send a `pg_notify` (through `crate::notify`, the LISTEN/NOTIFY
//! plumbing, which is the one other place that issues SQL) delivered at commit.
//!
//! Functions take `impl PgExecutor` when one statement is enough (a pool or a
//! transaction), and `&mut PgConnection` when they run several or must share the caller's
//! transaction and its locks.

pub mod catalog;
pub mod connectors;
pub mod heartbeats;
pub mod hosts;
pub mod instances;
pub mod memcache;
pub mod networks;
pub mod nodes;
pub mod operations;
pub mod quarantine;
pub mod quotas;
pub mod ranges;
pub mod requests;
pub mod retention;
pub mod samples;
pub mod tls;
pub mod tokens;

use sqlx::PgExecutor;

/// How many migrations Postgres has applied successfully (an error when it does not
/// answer).
pub async fn applied_migrations(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(db)
        .await
}
