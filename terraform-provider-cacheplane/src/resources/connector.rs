//! `cacheplane_connector`: a /28 of a network from which client processes outside the
//! network reach its instances. Create and delete are operations, waited for; nothing
//! changes in place, so every change replaces the connector.

use async_trait::async_trait;
use cacheplane_types::{Connector, CreateConnectorRequest};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{self, Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::lifecycle::{self, Call};
use crate::client::{ApiError, Client};
use crate::diags;
use crate::names::{network_changes, network_spelling, Regional};
use crate::provider::Shared;
use crate::schema::{
    attributes, changes, computed, known, optional, or_unknown, replaced, required, schema, STRING,
};
use crate::timeouts::{self, Action, Timeouts};

/// The API's collection of connectors.
const COLLECTION: &str = "connectors";

/// Attribute names, for naming the fields of the API's errors.
const ATTRIBUTES: &[&str] = &[
    "connector_id",
    "project",
    "region",
    "network",
    "ip_cidr_range",
    "name",
    "state",
    "host",
    "namespace",
    "create_time",
];

/// The state of a `cacheplane_connector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectorState {
    /// The connector's id.
    pub connector_id: Value<String>,
    /// Its project.
    pub project: Value<String>,
    /// Its region.
    pub region: Value<String>,
    /// The network it joins (an id or a full name).
    pub network: Value<String>,
    /// Its /28.
    pub ip_cidr_range: Value<String>,
    /// `projects/{project}/locations/{region}/connectors/{id}`.
    pub name: Value<String>,
    /// CREATING, READY or DELETING.
    pub state: Value<String>,
    /// The host that realises it (netns mode).
    pub host: Value<String>,
    /// Its network namespace on that host (netns mode).
    pub namespace: Value<String>,
    /// When it was created.
    pub create_time: Value<String>,
    /// How long to wait for the operations.
    #[serde(with = "value::serde_as_vec", default)]
    pub timeouts: Value<Timeouts>,
}

impl ConnectorState {
    /// The attributes of `c`, spelling the network as `prior` does.
    fn from_api(c: &Connector, prior: &ConnectorState) -> ConnectorState {
        let parts: Vec<&str> = c.name.split('/').collect();
        let (project, region, id) = match parts.as_slice() {
            ["projects", p, "locations", r, _, id] => {
                (p.to_string(), r.to_string(), id.to_string())
            }
            _ => (String::new(), String::new(), c.name.clone()),
        };
        ConnectorState {
            network: Value::Value(network_spelling(
                &c.network,
                known(&prior.network),
                &project,
            )),
            connector_id: Value::Value(id),
            project: Value::Value(project),
            region: Value::Value(region),
            ip_cidr_range: Value::Value(c.ip_cidr_range.clone()),
            name: Value::Value(c.name.clone()),
            state: Value::Value(c.state.as_str().to_string()),
            host: c.host.clone().into(),
            namespace: c.namespace.clone().into(),
            create_time: Value::Value(
                c.create_time
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
            timeouts: prior.timeouts.clone(),
        }
    }

    fn target(&self) -> Regional {
        let get = |v: &Value<String>| known(v).unwrap_or_default().to_string();
        Regional {
            project: get(&self.project),
            region: get(&self.region),
            id: get(&self.connector_id),
        }
    }
}

/// Reads the connector; `None` when it no longer exists.
async fn fetch(
    client: &Client,
    t: &Regional,
    prior: &ConnectorState,
) -> Result<Option<ConnectorState>, ApiError> {
    Ok(client
        .get_opt::<Connector>(&t.path(COLLECTION))
        .await?
        .map(|c| ConnectorState::from_api(&c, prior)))
}

/// The `cacheplane_connector` resource.
pub struct ConnectorResource {
    shared: Shared,
}

impl ConnectorResource {
    /// The resource, using the provider's settings once configured.
    pub fn new(shared: Shared) -> Self {
        ConnectorResource { shared }
    }
}

#[async_trait]
impl Resource for ConnectorResource {
    type State<'a> = ConnectorState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(timeouts::with_block(schema(
            "A connector: a /28 of a network from which clients outside it reach its \
             instances (a network namespace on a host in the API's netns mode). Any \
             change replaces it.",
            attributes(vec![
                ("connector_id", required(STRING, "The connector's id: 1-40 lowercase letters, digits or hyphens")),
                ("project", optional(STRING, "The project (the provider's unless set)")),
                ("region", optional(STRING, "The region (the provider's unless set)")),
                ("network", required(STRING, "The network: an id (default) or projects/{project}/networks/{id}")),
                ("ip_cidr_range", optional(STRING, "An aligned, free /28 of the network's pool (the first free one unless set)")),
                ("name", computed(STRING, "projects/{project}/locations/{region}/connectors/{id}")),
                ("state", computed(STRING, "CREATING, READY or DELETING")),
                ("host", computed(STRING, "The host that realises it (netns mode)")),
                ("namespace", computed(STRING, "The network namespace on its host where clients run (netns mode)")),
                ("create_time", computed(STRING, "When it was created (RFC 3339)")),
            ]),
        )))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        timeouts::validate(diags, &config.timeouts);
        Some(())
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
        let t = state.target();
        let what = format!("reading connector {}", t.full_name(COLLECTION));
        let fetched = fetch(&s.client, &t, &state).await;
        lifecycle::refreshed(diags, fetched, state, &what, ATTRIBUTES).map(|c| (c, private_state))
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
        if p.region.is_null() {
            p.region = Value::Value(s.region.clone());
        }
        p.name = match (&p.project, &p.region, &p.connector_id) {
            (Value::Value(a), Value::Value(b), Value::Value(c)) => {
                Value::Value(format!("projects/{a}/locations/{b}/connectors/{c}"))
            }
            _ => Value::Unknown,
        };
        p.ip_cidr_range = or_unknown(p.ip_cidr_range.take());
        p.state = Value::Unknown;
        p.host = Value::Unknown;
        p.namespace = Value::Unknown;
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
        let project = known(&a.project).unwrap_or_default();
        let network_changed = network_changes(&a.network, &b.network, project);
        let replace = replaced(&[
            ("connector_id", changes(&a.connector_id, &b.connector_id)),
            ("project", changes(&a.project, &b.project)),
            ("region", changes(&a.region, &b.region)),
            ("network", network_changed),
            ("ip_cidr_range", changes(&a.ip_cidr_range, &b.ip_cidr_range)),
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
        let timeout = timeouts::get(diags, &planned_state.timeouts, Action::Create)?;
        let t = planned_state.target();
        let what = format!("creating connector {}", t.full_name(COLLECTION));
        let body = CreateConnectorRequest {
            network: known(&planned_state.network)
                .unwrap_or_default()
                .to_string(),
            ip_cidr_range: known(&planned_state.ip_cidr_range).map(str::to_string),
        };
        let rid = lifecycle::request_id();
        let call = Call {
            method: Method::POST,
            path: t.collection(COLLECTION),
            query: vec![("connectorId", t.id.as_str()), ("requestId", rid.as_str())],
            body: serde_json::to_value(&body).ok(),
        };
        let op = lifecycle::send(diags, &s.client, call, &what, ATTRIBUTES).await?;
        let waited = lifecycle::wait(diags, &s.client, op, timeout, &what, ATTRIBUTES).await;
        let fetched = fetch(&s.client, &t, &planned_state).await;
        if waited.is_none() {
            // Still being created: keep it in the state (tainted) rather than lose it.
            let state = fetched.ok().flatten()?;
            return Some((state, planned_private_state));
        }
        let missing = format!("{what}: it disappeared right after its operation");
        diags::found(diags, fetched, &what, &missing, ATTRIBUTES)
            .map(|c| (c, planned_private_state))
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
        // Only `timeouts` (or the network's spelling) can change without a replacement.
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
        let timeout = timeouts::get(diags, &prior_state.timeouts, Action::Delete)?;
        let t = prior_state.target();
        let what = format!("deleting connector {}", t.full_name(COLLECTION));
        let path = t.path(COLLECTION);
        lifecycle::delete_and_wait(diags, &s.client, &path, timeout, &what, ATTRIBUTES).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let t = lifecycle::import_regional(diags, s, &id, COLLECTION, "connector")?;
        let fetched = fetch(&s.client, &t, &ConnectorState::default()).await;
        let name = t.full_name(COLLECTION);
        lifecycle::imported(
            diags,
            fetched,
            "connector",
            &name,
            "importing connector",
            ATTRIBUTES,
        )
    }
}
