//! A throwaway database per test, inside the cluster `DATABASE_URL` names.
//!
//! `DATABASE_URL` must point at a PostgreSQL cluster where that role may `CREATE
//! DATABASE`; `scripts/test.sh` starts a throwaway one and sets it. Each test's database
//! is dropped when its `TestDb` goes out of scope, unless the test panicked (kept for
//! inspection) or `CACHEPLANE_TEST_KEEP_DB` is set.

use sqlx::Connection;

/// The `DATABASE_URL` of the test cluster, or a panic explaining how to get one.
pub fn cluster_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: the integration tests need a PostgreSQL cluster. \
             Run them with `bash scripts/test.sh` (it starts a throwaway cluster), or \
             start one with `eval \"$(bash scripts/lib/pg.sh start)\"` and run cargo again."
        ),
    }
}

/// `url` with its path (the database name) replaced by `/{database}`.
pub fn with_database(url: &str, database: &str) -> String {
    let mut parsed = reqwest::Url::parse(url)
        .unwrap_or_else(|e| panic!("DATABASE_URL {url:?} is not a valid URL: {e}"));
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A database of its own for one test, inside the `DATABASE_URL` cluster.
pub struct TestDb {
    /// Connection URL of this test's database.
    pub url: String,
    name: String,
    cluster_url: String,
}

impl TestDb {
    /// Creates `cp_test_<uuid>` in the cluster named by `DATABASE_URL`.
    pub async fn new() -> TestDb {
        TestDb::new_in(&cluster_url()).await
    }

    /// Creates `cp_test_<uuid>` in the cluster at `cluster_url` (a URL whose role may
    /// create databases), e.g. a test's private cluster ([`crate::pg::PrivatePg`]).
    pub async fn new_in(cluster_url: &str) -> TestDb {
        let cluster_url = cluster_url.to_string();
        let name = format!("cp_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&cluster_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to DATABASE_URL ({cluster_url}): {e}; \
                     is the cluster running? `bash scripts/test.sh` starts one"
                )
            });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let _ = conn.close().await;
        TestDb {
            url: with_database(&cluster_url, &name),
            name,
            cluster_url,
        }
    }

    /// [`TestDb::new`] for synchronous tests (it runs on a runtime of its own).
    pub fn new_blocking() -> TestDb {
        on_own_runtime(TestDb::new())
    }

    /// The database's name (`cp_test_…`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A direct connection to this test's database, for checks the API does not expose.
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CACHEPLANE_TEST_KEEP_DB").is_some() {
            eprintln!("keeping test database {} ({})", self.name, self.url);
            return;
        }
        // Best effort: the cluster is thrown away anyway.
        let cluster_url = self.cluster_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        on_own_runtime(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&cluster_url).await {
                let _ = sqlx::query(&sql).execute(&mut conn).await;
                let _ = conn.close().await;
            }
        });
    }
}

/// Runs `fut` to completion on a thread with a runtime of its own: drop runs inside the
/// test's runtime, which cannot be blocked on, and synchronous tests have none.
fn on_own_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a runtime")
            .block_on(fut)
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}
