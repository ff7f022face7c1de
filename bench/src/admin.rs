//! The admin side of the API as the benchmarks drive it: JSON calls with the admin
//! token, creates and deletes of instances in [`PARENT`], and waits on operations.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cacheplane_testkit::wait::{try_wait_until, Poll};
use serde_json::{json, Value};

/// Where the instances are created: project `bench` (made by the first create).
pub const PARENT: &str = "/v1/projects/bench/locations/local";

/// How long any single create or delete may take before the run is given up.
const OP_LIMIT: Duration = Duration::from_secs(120);

/// An HTTP client of one API server with the admin token.
#[derive(Clone)]
pub struct AdminClient {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// A client of the API at `base` (`http://127.0.0.1:PORT`) sending `token`.
    pub fn new(base: &str, token: &str) -> anyhow::Result<AdminClient> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(90))
            .build()?;
        Ok(AdminClient {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// `METHOD path` with the admin token and a JSON body; the status and JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, json))
    }

    /// Sends the create of instance `id`; answers the operation's name and when the
    /// POST was answered.
    pub async fn send_create(&self, id: &str, body: &Value) -> anyhow::Result<(String, Instant)> {
        self.send_create_in("instances", id, body).await
    }

    /// [`AdminClient::send_create`] in another collection of [`PARENT`] (e.g.
    /// `memcacheInstances`).
    pub async fn send_create_in(
        &self,
        collection: &str,
        id: &str,
        body: &Value,
    ) -> anyhow::Result<(String, Instant)> {
        let (status, op) = self
            .call(
                reqwest::Method::POST,
                &format!("{PARENT}/{collection}?instanceId={id}"),
                Some(body),
            )
            .await?;
        let at = Instant::now();
        ensure!(status == 200, "create {id}: {status} {op}");
        Ok((op_name(&op)?, at))
    }

    /// Waits (server side, 30 s at a time) until operation `name` is done and fails when
    /// it ended in an error; answers the done operation.
    pub async fn wait_op(&self, name: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + OP_LIMIT;
        loop {
            let (status, op) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/{name}/wait?timeout=30s"),
                    Some(&json!({})),
                )
                .await?;
            ensure!(status == 200, "wait {name}: {status} {op}");
            if op["done"] == true {
                if !op["error"].is_null() {
                    bail!("operation {name} failed: {op}");
                }
                return Ok(op);
            }
            if Instant::now() > deadline {
                bail!("operation {name} not done after {OP_LIMIT:?}: {op}");
            }
        }
    }

    /// Creates instance `id` and waits until it is READY.
    pub async fn create(&self, id: &str, body: &Value) -> anyhow::Result<Value> {
        let (name, _) = self.send_create(id, body).await?;
        self.wait_op(&name).await?;
        self.instance(id).await
    }

    /// `GET …/instances/{id}`, which must answer 200.
    pub async fn instance(&self, id: &str) -> anyhow::Result<Value> {
        self.resource("instances", id).await
    }

    /// One resource `id` of a collection of [`PARENT`] (e.g. `memcacheInstances`).
    pub async fn resource(&self, collection: &str, id: &str) -> anyhow::Result<Value> {
        let (status, inst) = self
            .call(
                reqwest::Method::GET,
                &format!("{PARENT}/{collection}/{id}"),
                None,
            )
            .await?;
        ensure!(status == 200, "get {id}: {status} {inst}");
        Ok(inst)
    }

    /// The auth string of instance `id` (`GET …/instances/{id}/authString`).
    pub async fn auth_string(&self, id: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("{PARENT}/instances/{id}/authString"),
                None,
            )
            .await?;
        ensure!(status == 200, "auth string of {id}: {status}");
        body["authString"]
            .as_str()
            .map(str::to_string)
            .context("no authString in the answer")
    }

    /// The first page of `GET …/operations` (newest first, 100 of them).
    pub async fn operations(&self) -> anyhow::Result<Vec<Value>> {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("{PARENT}/operations"), None)
            .await?;
        ensure!(status == 200, "list operations: {status} {body}");
        body["operations"]
            .as_array()
            .cloned()
            .with_context(|| format!("no operations array in {body}"))
    }

    /// Polls instance `id` every 50 ms until it is READY with `nodes` nodes, all READY;
    /// answers it. Fails after `limit`.
    pub async fn wait_ready(
        &self,
        id: &str,
        nodes: usize,
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let what = format!("{id} is READY with {nodes} READY nodes");
        let inst = try_wait_until(&what, limit, Duration::from_millis(50), || async {
            match self.instance(id).await {
                Ok(inst) if is_ready(&inst, nodes) => Ok(inst),
                Ok(inst) => Err(Poll::NotYet(inst.to_string())),
                Err(e) => Err(Poll::Permanent(format!("{e:#}"))),
            }
        })
        .await?;
        Ok(inst)
    }

    /// Deletes instance `id` and waits for the operation.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.delete_in("instances", id).await
    }

    /// Deletes resource `id` of a collection of [`PARENT`] and waits for it.
    pub async fn delete_in(&self, collection: &str, id: &str) -> anyhow::Result<()> {
        let (status, op) = self
            .call(
                reqwest::Method::DELETE,
                &format!("{PARENT}/{collection}/{id}"),
                None,
            )
            .await?;
        ensure!(status == 200, "delete {id}: {status} {op}");
        self.wait_op(&op_name(&op)?).await?;
        Ok(())
    }
}

/// Whether `inst` is READY with `nodes` nodes, every one READY.
pub fn is_ready(inst: &Value, nodes: usize) -> bool {
    let all = inst["nodes"].as_array();
    inst["state"] == "READY"
        && all.map_or(0, Vec::len) == nodes
        && all.is_some_and(|n| n.iter().all(|n| n["state"] == "READY"))
}

/// The `name` of an operation.
pub fn op_name(op: &Value) -> anyhow::Result<String> {
    op["name"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no operation name in {op}"))
}
