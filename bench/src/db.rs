//! Throwaway databases: each figure runs in a database of its own, created in the
//! cluster `DATABASE_URL` points at, migrated, and dropped afterwards.

use anyhow::Context;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

/// A database created for one benchmark.
pub struct FreshDb {
    admin_url: String,
    name: String,
    url: String,
    keep: bool,
}

impl FreshDb {
    /// Creates database `{prefix}_{random}` next to the one `admin_url` names and applies
    /// the migrations. With `keep` the database survives [`FreshDb::drop_db`].
    pub async fn create(admin_url: &str, prefix: &str, keep: bool) -> anyhow::Result<FreshDb> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{prefix}_{}", &suffix[..12]);
        let mut url = reqwest::Url::parse(admin_url).context("parsing DATABASE_URL")?;
        url.set_path(&format!("/{name}"));
        let mut admin = PgConnection::connect(admin_url)
            .await
            .context("connecting to DATABASE_URL")?;
        sqlx::query(&format!("create database \"{name}\""))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await.ok();
        let db = FreshDb {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
            keep,
        };
        let pool = db.pool(4).await?;
        cacheplane_api::MIGRATOR
            .run(&pool)
            .await
            .context("applying migrations")?;
        pool.close().await;
        Ok(db)
    }

    /// The database's connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection pool on the database.
    pub async fn pool(&self, max: u32) -> anyhow::Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(max)
            .connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.name))
    }

    /// One connection on the database.
    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.name))
    }

    /// Drops the database (forcing out leftover sessions) unless it is to be kept.
    pub async fn drop_db(self) -> anyhow::Result<()> {
        if self.keep {
            eprintln!("[bench] keeping database {}", self.name);
            return Ok(());
        }
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "drop database if exists \"{}\" with (force)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        admin.close().await.ok();
        Ok(())
    }
}

/// `select version()` shortened to `PostgreSQL 15.18`.
pub async fn server_version(admin_url: &str) -> anyhow::Result<String> {
    let mut conn = PgConnection::connect(admin_url).await?;
    let v: String = sqlx::query_scalar("show server_version")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await.ok();
    let short = v.split_whitespace().next().unwrap_or(&v).to_string();
    Ok(format!("PostgreSQL {short}"))
}
