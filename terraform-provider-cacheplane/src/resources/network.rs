//! `cacheplane_network`: a VPC-style network, the pool from which instance and connector
//! ranges are allocated. The API creates and deletes networks at once (no operation)
//! and changes none in place: every change replaces the network.

use std::time::Duration;

use async_trait::async_trait;
use cacheplane_types::{CreateNetworkRequest, Network};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::lifecycle;
use crate::client::absent_as_none;
use crate::diags;
use crate::names::parse_network;
use crate::provider::Shared;
use crate::schema::{
    attributes, changes, computed, known, optional, or_unknown, replaced, required, schema, STRING,
};

/// Attribute names, for naming the fields of the API's errors.
const ATTRIBUTES: &[&str] = &[
    "network_id",
    "project",
    "ip_range",
    "description",
    "name",
    "create_time",
];

/// The state of a `cacheplane_network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The network's id in its project.
    pub network_id: Value<String>,
    /// Its project.
    pub project: Value<String>,
    /// Its pool (CIDR).
    pub ip_range: Value<String>,
    /// Free text.
    pub description: Value<String>,
    /// `projects/{project}/networks/{id}`.
    pub name: Value<String>,
    /// When it was created.
    pub create_time: Value<String>,
}

impl NetworkState {
    fn from_api(n: &Network) -> NetworkState {
        let parts: Vec<&str> = n.name.split('/').collect();
        let (project, id) = match parts.as_slice() {
            ["projects", p, "networks", id] => (p.to_string(), id.to_string()),
            _ => (String::new(), n.name.clone()),
        };
        NetworkState {
            network_id: Value::Value(id),
            project: Value::Value(project),
            ip_range: Value::Value(n.ip_range.clone()),
            description: Value::Value(n.description.clone()),
            name: Value::Value(n.name.clone()),
            create_time: Value::Value(
                n.create_time
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
        }
    }

    fn path(&self) -> Vec<String> {
        let get = |v: &Value<String>| known(v).unwrap_or_default().to_string();
        vec![
            "projects".into(),
            get(&self.project),
            "networks".into(),
            get(&self.network_id),
        ]
    }
}

/// The `cacheplane_network` resource.
pub struct NetworkResource {
    shared: Shared,
}

impl NetworkResource {
    /// The resource, using the provider's settings once configured.
    pub fn new(shared: Shared) -> Self {
        NetworkResource { shared }
    }
}

fn segments(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[async_trait]
impl Resource for NetworkResource {
    type State<'a> = NetworkState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(
            "A network: the address pool of its instances and connectors. Any change replaces it.",
            attributes(vec![
                (
                    "network_id",
                    required(STRING, "The network's id in its project"),
                ),
                (
                    "project",
                    optional(STRING, "The project (the provider's unless set)"),
                ),
                (
                    "ip_range",
                    required(
                        STRING,
                        "The pool, a CIDR such as 10.128.0.0/16, inside a supernet the API allows",
                    ),
                ),
                ("description", optional(STRING, "Free text")),
                ("name", computed(STRING, "projects/{project}/networks/{id}")),
                (
                    "create_time",
                    computed(STRING, "When it was created (RFC 3339)"),
                ),
            ]),
        ))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let Some(s) = self.shared.get(diags) else {
            return Some((state, private_state));
        };
        let path = state.path();
        let fetched = s.client.get_opt::<Network>(&segments(&path)).await;
        let fetched = fetched.map(|n| n.as_ref().map(NetworkState::from_api));
        lifecycle::refreshed(diags, fetched, state, "reading network", ATTRIBUTES)
            .map(|n| (n, private_state))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let mut p = proposed_state;
        if p.project.is_null() {
            p.project = Value::Value(s.project.clone());
        }
        p.description = match p.description.take() {
            Value::Null => Value::Value(String::new()),
            v => v,
        };
        p.name = match (&p.project, &p.network_id) {
            (Value::Value(proj), Value::Value(id)) => {
                Value::Value(format!("projects/{proj}/networks/{id}"))
            }
            _ => Value::Unknown,
        };
        p.ip_range = or_unknown(p.ip_range.take());
        p.create_time = Value::Unknown;
        Some((p, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let (a, b) = (&prior_state, &proposed_state);
        let replace = replaced(&[
            ("network_id", changes(&a.network_id, &b.network_id)),
            ("project", changes(&a.project, &b.project)),
            ("ip_range", changes(&a.ip_range, &b.ip_range)),
            ("description", changes(&a.description, &b.description)),
        ]);
        Some((proposed_state, prior_private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let project = known(&planned_state.project).unwrap_or_default();
        let id = known(&planned_state.network_id).unwrap_or_default();
        let body = CreateNetworkRequest {
            ip_range: known(&planned_state.ip_range)
                .unwrap_or_default()
                .to_string(),
            description: known(&planned_state.description)
                .unwrap_or_default()
                .to_string(),
        };
        // No requestId here: the API creates networks at once, and the client sends the
        // call again only when it could not be delivered.
        let created: Result<Network, _> = s
            .client
            .call(
                Method::POST,
                &["projects", project, "networks"],
                &[("networkId", id)],
                Some(&body),
                Duration::from_secs(60),
            )
            .await;
        let what = format!("creating network projects/{project}/networks/{id}");
        let n = diags::ok(diags, created, &what, ATTRIBUTES)?;
        Some((NetworkState::from_api(&n), planned_private_state))
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        // Every change replaces a network: an update changes nothing.
        Some((planned_state, planned_private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        _planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let s = self.shared.get(diags)?;
        let path = prior_state.path();
        let deleted: Result<(), _> = s
            .client
            .call(
                Method::DELETE,
                &segments(&path),
                &[],
                None::<&()>,
                Duration::from_secs(60),
            )
            .await;
        // A network already gone is deleted.
        let what = format!("deleting network {}", path.join("/"));
        diags::ok(diags, absent_as_none(deleted), &what, ATTRIBUTES).map(drop)
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let parsed = parse_network(&id, &s.project);
        let (project, id) = lifecycle::import_target(diags, "network", parsed)?;
        let path: [&str; 4] = ["projects", &project, "networks", &id];
        let fetched = s.client.get_opt::<Network>(&path).await;
        let fetched = fetched.map(|n| n.as_ref().map(NetworkState::from_api));
        let name = path.join("/");
        lifecycle::imported(
            diags,
            fetched,
            "network",
            &name,
            "importing network",
            ATTRIBUTES,
        )
    }
}
