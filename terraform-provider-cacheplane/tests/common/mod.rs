//! The real stack the provider tests drive: a database of their own in the
//! `DATABASE_URL` cluster, the `cacheplane-api` process and three
//! `cacheplane-node-agent`s running `redis-server` (from the test kit), plus a second
//! 127.Y.0.0/16 of the test's own that the API accepts as a network pool, for the
//! network the configuration creates.

#![allow(dead_code)] // each test uses a different part of the harness

pub mod terraform;

use std::net::TcpListener;

use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::api::{op_name, wait_op};
use cacheplane_testkit::net::private_supernet;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::{Api, TestDb, GIB};
use serde_json::Value;

/// The API and three agents, and a pool for one network.
pub struct Stack {
    /// The project the tests use.
    pub project: String,
    /// The pool the configuration's network may take (a /16 of 127/8 of this test's).
    pub pool: String,
    // Dropped in this order: agents before the API, the database last.
    agents: Vec<Agent>,
    /// The API process.
    pub api: Api,
    _guards: (TcpListener, TcpListener),
    _db: TestDb,
    /// The runtime the API calls run on.
    pub rt: tokio::runtime::Runtime,
}

impl Stack {
    /// Starts everything; returns once the three hosts are UP.
    pub fn start(project: &str) -> Stack {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a runtime");
        let db = rt.block_on(TestDb::new());
        let (pool, pool_guard) = private_supernet();
        let (api, guard) = rt.block_on(start_api(&db, &["--network-supernets", &pool]));
        let agents = rt.block_on(three_agents(&api, 8 * GIB));
        Stack {
            project: project.to_string(),
            pool,
            agents,
            api,
            _guards: (guard, pool_guard),
            _db: db,
            rt,
        }
    }

    /// `/v1/projects/{project}/locations/local`.
    pub fn parent(&self) -> String {
        format!("/v1/projects/{}/locations/local", self.project)
    }

    /// GET with the admin token; the status and body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.rt.block_on(self.api.get(path))
    }

    /// The instance `id`, which must exist.
    pub fn instance(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("{}/instances/{id}", self.parent()));
        assert_eq!(status, 200, "GET instance {id}: {body}");
        body
    }

    /// The AUTH string of instance `id`.
    pub fn auth_string(&self, id: &str) -> String {
        let (status, body) = self.get(&format!("{}/instances/{id}/authString", self.parent()));
        assert_eq!(status, 200, "authString of {id}: {body}");
        body["authString"].as_str().expect("authString").to_string()
    }

    /// Starts `op` with `call`, waits for it (60 s) and checks it succeeded.
    pub fn run_op(&self, what: &str, (status, op): (u16, Value)) -> Value {
        assert_eq!(status, 200, "{what}: {op}");
        let done = self.rt.block_on(wait_op(&self.api, &op_name(&op), "60s"));
        assert!(
            done["done"] == true && done["error"].is_null(),
            "{what}: {done}"
        );
        done
    }

    /// Deletes instance `id` through the API (as a user outside Terraform would) and
    /// waits until it is gone.
    pub fn delete_instance(&self, id: &str) {
        let path = format!("{}/instances/{id}", self.parent());
        let answer = self.rt.block_on(self.api.delete(&path));
        self.run_op(&format!("delete {id}"), answer);
    }

    /// Creates a BASIC 1 GB instance `id` through the API and waits until it is READY.
    pub fn create_instance(&self, id: &str) -> Value {
        let (inst, _) = self.rt.block_on(cacheplane_testkit::api::create_ready(
            &self.api,
            &self.parent(),
            id,
            serde_json::json!({"tier": "BASIC", "memorySizeGb": 1}),
        ));
        inst
    }
}
