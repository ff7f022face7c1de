//! `cacheplane_instance`: a managed Redis cache. Create, in-place updates (PATCH with an
//! update mask) and delete each wait for their operation; reads refresh every attribute
//! from the API (an instance deleted outside Terraform leaves the state, so the next plan
//! creates it again); `terraform import` takes a full name or an id.

use std::time::Duration;

use async_trait::async_trait;
use cacheplane_types::{
    CreateInstanceRequest, Instance, InstanceAuthString, Operation, PatchInstanceRequest,
    ReadReplicasMode, Tier, TransitEncryptionMode,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Block, Description, Schema};
use tf_provider::value::{self, Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use super::instance_fields::{self as fields, parse_read_replicas, InstanceFields, ATTRIBUTES};
use super::instance_plan as plan;
use crate::client::{ApiError, Client};
use crate::diags;
use crate::names::{parse_regional, Regional};
use crate::operations;
use crate::provider::{Settings, Shared};
use crate::schema::known;
use crate::timeouts::{self, Action, Timeouts};

/// The API's collection of instances.
const COLLECTION: &str = "instances";

/// The state of a `cacheplane_instance`: the instance's attributes and the `timeouts`
/// block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    /// Every attribute of the instance.
    #[serde(flatten)]
    pub fields: InstanceFields,
    /// How long to wait for the operations.
    #[serde(with = "value::serde_as_vec", default)]
    pub timeouts: Value<Timeouts>,
}

/// The `cacheplane_instance` resource.
pub struct InstanceResource {
    shared: Shared,
}

impl InstanceResource {
    /// The resource, using the provider's settings once configured.
    pub fn new(shared: Shared) -> Self {
        InstanceResource { shared }
    }
}

/// Where the instance of `f` lives (its project, region and id must be known).
fn target(f: &InstanceFields) -> Regional {
    let get = |v: &Value<String>| known(v).unwrap_or_default().to_string();
    Regional {
        project: get(&f.project),
        region: get(&f.region),
        id: get(&f.instance_id),
    }
}

/// Reads the instance and its AUTH string; `None` when it no longer exists.
pub async fn fetch(
    client: &Client,
    t: &Regional,
    prior: &InstanceFields,
) -> Result<Option<InstanceFields>, ApiError> {
    let path = t.path(COLLECTION);
    let Some(inst) = client.get_opt::<Instance>(&path).await? else {
        return Ok(None);
    };
    let mut auth_path = path.clone();
    auth_path.push("authString");
    let auth = match client.get_opt::<InstanceAuthString>(&auth_path).await? {
        Some(a) if inst.auth_enabled => Some(a.auth_string),
        _ => None,
    };
    Ok(Some(InstanceFields::from_api(&inst, auth, prior)))
}

/// The create request of a planned state.
fn create_request(f: &InstanceFields) -> CreateInstanceRequest {
    let s = |v: &Value<String>| known(v).map(str::to_string);
    CreateInstanceRequest {
        display_name: s(&f.display_name),
        tier: known(&f.tier).and_then(Tier::parse).unwrap_or(Tier::Basic),
        memory_size_gb: f.memory_size_gb.as_ref_option().copied().unwrap_or(0),
        replica_count: f.replica_count.as_ref_option().copied(),
        read_replicas_mode: known(&f.read_replicas_mode).and_then(parse_read_replicas),
        location_id: s(&f.location_id),
        alternative_location_id: s(&f.alternative_location_id),
        redis_version: s(&f.redis_version),
        redis_configs: f.redis_configs.as_ref_option().cloned().unwrap_or_default(),
        authorized_network: s(&f.authorized_network),
        reserved_ip_range: s(&f.reserved_ip_range),
        auth_enabled: f.auth_enabled.as_ref_option().copied(),
        transit_encryption_mode: known(&f.transit_encryption_mode)
            .and_then(TransitEncryptionMode::parse),
        labels: f.labels.as_ref_option().cloned().unwrap_or_default(),
    }
}

/// A mutating call of the API: method, path under `/v1`, query and JSON body.
struct Call<'a> {
    method: Method,
    path: Vec<&'a str>,
    query: Vec<(&'a str, &'a str)>,
    body: Option<serde_json::Value>,
}

/// A new `requestId`: one per operation, sent with every attempt of its call.
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Checks the enumerations of the configuration against the API's wire names.
fn validate_enums(diags: &mut Diagnostics, f: &InstanceFields) {
    let mut check = |attr: &'static str, v: &Value<String>, ok: bool, allowed: &str| {
        if let (Value::Value(s), false) = (v, ok) {
            diags.error_short(
                format!("{attr}: '{s}' is not one of {allowed}"),
                AttributePath::new(attr),
            );
        }
    };
    let t = &f.tier;
    check(
        "tier",
        t,
        known(t).and_then(Tier::parse).is_some(),
        "BASIC, STANDARD_HA",
    );
    let r = &f.read_replicas_mode;
    check(
        "read_replicas_mode",
        r,
        known(r).and_then(parse_read_replicas).is_some(),
        "READ_REPLICAS_DISABLED, READ_REPLICAS_ENABLED",
    );
    let m = &f.transit_encryption_mode;
    check(
        "transit_encryption_mode",
        m,
        known(m).and_then(TransitEncryptionMode::parse).is_some(),
        "DISABLED, SERVER_AUTHENTICATION",
    );
}

impl InstanceResource {
    /// Sends a mutating call (its operation comes back), then waits for the operation.
    async fn run(
        &self,
        diags: &mut Diagnostics,
        s: &Settings,
        what: &str,
        call: Call<'_>,
        timeout: Duration,
    ) -> Option<Operation> {
        let op: Operation = match s
            .client
            .call(
                call.method,
                &call.path,
                &call.query,
                call.body.as_ref(),
                Duration::from_secs(60),
            )
            .await
        {
            Ok(op) => op,
            Err(e) => {
                diags::api(diags, what, &e, ATTRIBUTES);
                return None;
            }
        };
        match operations::wait(&s.client, op, timeout).await {
            Ok(op) => Some(op),
            Err(e) => {
                diags::wait(diags, what, &e, ATTRIBUTES);
                None
            }
        }
    }

    /// One PATCH with its update mask, waited for.
    async fn patch(
        &self,
        diags: &mut Diagnostics,
        s: &Settings,
        t: &Regional,
        mask: &[&str],
        body: &PatchInstanceRequest,
        timeout: Duration,
    ) -> Option<()> {
        let mask = mask.join(",");
        let rid = request_id();
        let what = format!("updating instance {} ({mask})", t.full_name(COLLECTION));
        let body = serde_json::to_value(body).ok();
        let call = Call {
            method: Method::PATCH,
            path: t.path(COLLECTION),
            query: vec![("updateMask", mask.as_str()), ("requestId", rid.as_str())],
            body,
        };
        self.run(diags, s, &what, call, timeout).await.map(drop)
    }

    /// The state after a create or update: the instance as the API has it now.
    async fn refreshed(
        &self,
        diags: &mut Diagnostics,
        s: &Settings,
        planned: &InstanceState,
    ) -> Option<InstanceState> {
        let t = target(&planned.fields);
        match fetch(&s.client, &t, &planned.fields).await {
            Ok(Some(fields)) => Some(InstanceState {
                fields,
                timeouts: planned.timeouts.clone(),
            }),
            Ok(None) => {
                diags.root_error_short(format!(
                    "instance {} disappeared right after its operation",
                    t.full_name(COLLECTION)
                ));
                None
            }
            Err(e) => {
                diags::api(
                    diags,
                    &format!("reading instance {}", t.full_name(COLLECTION)),
                    &e,
                    ATTRIBUTES,
                );
                None
            }
        }
    }
}

#[async_trait]
impl Resource for InstanceResource {
    type State<'a> = InstanceState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain(
                    "A managed Redis cache. memory_size_gb, replica_count, redis_configs, labels \
                     and display_name change in place; enabling read replicas is in place; \
                     tier, zones, network, range, version, AUTH and TLS replace the instance.",
                ),
                attributes: fields::attributes(false),
                blocks: map! { "timeouts" => timeouts::block() },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        validate_enums(diags, &config.fields);
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
        let t = target(&state.fields);
        match fetch(&s.client, &t, &state.fields).await {
            Ok(Some(fields)) => Some((
                InstanceState {
                    fields,
                    timeouts: state.timeouts,
                },
                private_state,
            )),
            // Deleted outside Terraform: it leaves the state, and the next plan creates it.
            Ok(None) => None,
            Err(e) => {
                diags::api(
                    diags,
                    &format!("reading instance {}", t.full_name(COLLECTION)),
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
        Some((
            plan::create(proposed_state, &s.project, &s.region),
            ValueEmpty::default(),
        ))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let (planned, replace) = plan::update(&prior_state, proposed_state, &config_state);
        Some((planned, prior_private_state, replace))
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
        let t = target(&planned_state.fields);
        let rid = request_id();
        let body = serde_json::to_value(create_request(&planned_state.fields)).ok();
        let call = Call {
            method: Method::POST,
            path: t.collection(COLLECTION),
            query: vec![("instanceId", t.id.as_str()), ("requestId", rid.as_str())],
            body,
        };
        let what = format!("creating instance {}", t.full_name(COLLECTION));
        let done = self.run(diags, s, &what, call, timeout).await;
        if done.is_none() {
            // A create that timed out goes on in the API: keep the instance in the state
            // (Terraform marks it tainted) so that it is not lost. A failed one left
            // nothing behind.
            if let Ok(Some(fields)) = fetch(&s.client, &t, &planned_state.fields).await {
                let state = InstanceState {
                    fields,
                    timeouts: planned_state.timeouts,
                };
                return Some((state, planned_private_state));
            }
            return None;
        }
        let state = self.refreshed(diags, s, &planned_state).await?;
        Some((state, planned_private_state))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let timeout = timeouts::get(diags, &planned_state.timeouts, Action::Update)?;
        let t = target(&prior_state.fields);
        let (prior, planned) = (&prior_state.fields, &planned_state.fields);
        // Read replicas first: the API enables them in an operation of their own.
        if plan::enables_read_replicas(prior, planned) {
            let body = PatchInstanceRequest {
                read_replicas_mode: Some(ReadReplicasMode::ReadReplicasEnabled),
                secondary_ip_range: Some("auto".into()),
                ..Default::default()
            };
            let mask = ["readReplicasMode", "secondaryIpRange"];
            self.patch(diags, s, &t, &mask, &body, timeout).await?;
        }
        let mask = plan::update_mask(prior, planned);
        if !mask.is_empty() {
            let body = PatchInstanceRequest {
                display_name: known(&planned.display_name).map(str::to_string),
                memory_size_gb: planned.memory_size_gb.as_ref_option().copied(),
                replica_count: planned.replica_count.as_ref_option().copied(),
                redis_configs: planned.redis_configs.as_ref_option().cloned(),
                labels: planned.labels.as_ref_option().cloned(),
                ..Default::default()
            };
            if self
                .patch(diags, s, &t, &mask, &body, timeout)
                .await
                .is_none()
            {
                // Nothing changed, or the change goes on in the API: the state is what the
                // API has now (the error is in the diagnostics).
                let fields = fetch(&s.client, &t, prior).await.ok().flatten()?;
                let state = InstanceState {
                    fields,
                    timeouts: prior_state.timeouts,
                };
                return Some((state, planned_private_state));
            }
        }
        let state = self.refreshed(diags, s, &planned_state).await?;
        Some((state, planned_private_state))
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
        let t = target(&prior_state.fields);
        let rid = request_id();
        let what = format!("deleting instance {}", t.full_name(COLLECTION));
        let op: Operation = match s
            .client
            .call(
                Method::DELETE,
                &t.path(COLLECTION),
                &[("requestId", rid.as_str())],
                None::<&()>,
                Duration::from_secs(60),
            )
            .await
        {
            Ok(op) => op,
            // Already gone.
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
                diags.root_error_short(format!("cannot import instance: {e}"));
                return None;
            }
        };
        match fetch(&s.client, &t, &InstanceFields::default()).await {
            Ok(Some(fields)) => Some((
                InstanceState {
                    fields,
                    timeouts: Value::Null,
                },
                ValueEmpty::default(),
            )),
            Ok(None) => {
                diags.root_error_short(format!(
                    "cannot import instance: {} does not exist",
                    t.full_name(COLLECTION)
                ));
                None
            }
            Err(e) => {
                diags::api(
                    diags,
                    &format!("importing instance {}", t.full_name(COLLECTION)),
                    &e,
                    ATTRIBUTES,
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_state_makes_the_create_request() {
        let f = InstanceFields {
            instance_id: Value::Value("c".into()),
            tier: Value::Value("STANDARD_HA".into()),
            memory_size_gb: Value::Value(2),
            replica_count: Value::Unknown,
            read_replicas_mode: Value::Value("READ_REPLICAS_ENABLED".into()),
            authorized_network: Value::Value("default".into()),
            labels: Value::Unknown,
            ..Default::default()
        };
        let r = create_request(&f);
        assert_eq!(r.tier, Tier::StandardHa);
        assert_eq!(r.memory_size_gb, 2);
        assert_eq!(r.replica_count, None);
        assert_eq!(
            r.read_replicas_mode,
            Some(ReadReplicasMode::ReadReplicasEnabled)
        );
        assert_eq!(r.authorized_network.as_deref(), Some("default"));
        assert!(r.labels.is_empty() && r.display_name.is_none());
    }

    #[test]
    fn unknown_enumerations_are_errors_on_their_attribute() {
        let mut d = Diagnostics::default();
        let f = InstanceFields {
            tier: Value::Value("PREMIUM".into()),
            read_replicas_mode: Value::Unknown,
            ..Default::default()
        };
        validate_enums(&mut d, &f);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].attribute, AttributePath::new("tier"));
    }
}
