//! `cacheplane_connector`: a /28 of a network from which client processes outside the
//! network reach its instances. Create and delete are operations, waited for; nothing
//! changes in place, so every change replaces the connector.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use cacheplane_types::{Connector, CreateConnectorRequest, Operation};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Block, Description, Schema};
use tf_provider::value::{self, Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use crate::client::{ApiError, Client};
use crate::diags;
use crate::names::{network_spelling, parse_regional, same_network, Regional};
use crate::operations;
use crate::provider::Shared;
use crate::schema::{attributes, changes, computed, known, optional, or_unknown, required, STRING};
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
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain(
                    "A connector: a /28 of a network from which clients outside it reach its \
                     instances (a network namespace on a host in the API's netns mode). Any \
                     change replaces it.",
                ),
                attributes: attributes(vec![
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
                blocks: map! { "timeouts" => timeouts::block() },
                ..Default::default()
            },
        })
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
        match fetch(&s.client, &t, &state).await {
            Ok(Some(c)) => Some((c, private_state)),
            Ok(None) => None,
            Err(e) => {
                diags::api(
                    diags,
                    &format!("reading connector {}", t.full_name(COLLECTION)),
                    &e,
                    ATTRIBUTES,
                );
                Some((state, private_state))
            }
        }
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
        let network_changed = match (&a.network, &b.network) {
            (Value::Value(x), Value::Value(y)) => !same_network(x, y, project),
            (x, y) => changes(x, y),
        };
        let mut replace = Vec::new();
        for (name, changed) in [
            ("connector_id", changes(&a.connector_id, &b.connector_id)),
            ("project", changes(&a.project, &b.project)),
            ("region", changes(&a.region, &b.region)),
            ("network", network_changed),
            ("ip_cidr_range", changes(&a.ip_cidr_range, &b.ip_cidr_range)),
        ] {
            if changed {
                replace.push(AttributePath::new(Cow::Borrowed(name)));
            }
        }
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
        let rid = uuid::Uuid::new_v4().to_string();
        let op: Result<Operation, _> = s
            .client
            .call(
                Method::POST,
                &t.collection(COLLECTION),
                &[("connectorId", t.id.as_str()), ("requestId", rid.as_str())],
                Some(&body),
                Duration::from_secs(60),
            )
            .await;
        let op = match op {
            Ok(op) => op,
            Err(e) => {
                diags::api(diags, &what, &e, ATTRIBUTES);
                return None;
            }
        };
        if let Err(e) = operations::wait(&s.client, op, timeout).await {
            diags::wait(diags, &what, &e, ATTRIBUTES);
            // Still being created: keep it in the state (tainted) rather than lose it.
            let state = fetch(&s.client, &t, &planned_state).await.ok().flatten()?;
            return Some((state, planned_private_state));
        }
        match fetch(&s.client, &t, &planned_state).await {
            Ok(Some(c)) => Some((c, planned_private_state)),
            Ok(None) => {
                diags.root_error_short(format!("{what}: it disappeared right after its operation"));
                None
            }
            Err(e) => {
                diags::api(diags, &what, &e, ATTRIBUTES);
                None
            }
        }
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
        let rid = uuid::Uuid::new_v4().to_string();
        let op: Result<Operation, _> = s
            .client
            .call(
                Method::DELETE,
                &t.path(COLLECTION),
                &[("requestId", rid.as_str())],
                None::<&()>,
                Duration::from_secs(60),
            )
            .await;
        let op = match op {
            Ok(op) => op,
            Err(e) if e.is_not_found() => return Some(()),
            Err(e) => {
                diags::api(diags, &what, &e, ATTRIBUTES);
                return None;
            }
        };
        match operations::wait(&s.client, op, timeout).await {
            Ok(_) => Some(()),
            Err(e) => {
                diags::wait(diags, &what, &e, ATTRIBUTES);
                None
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let t = match parse_regional(&id, COLLECTION, &s.project, &s.region) {
            Ok(t) => t,
            Err(e) => {
                diags.root_error_short(format!("cannot import connector: {e}"));
                return None;
            }
        };
        match fetch(&s.client, &t, &ConnectorState::default()).await {
            Ok(Some(c)) => Some((c, ValueEmpty::default())),
            Ok(None) => {
                diags.root_error_short(format!(
                    "cannot import connector: {} does not exist",
                    t.full_name(COLLECTION)
                ));
                None
            }
            Err(e) => {
                diags::api(diags, "importing connector", &e, ATTRIBUTES);
                None
            }
        }
    }
}
