//! `cacheplane_instance`: a managed Redis cache. Create, in-place updates (PATCH with an
//! update mask) and delete each wait for their operation; reads refresh every attribute
//! from the API (an instance deleted outside Terraform leaves the state, so the next plan
//! creates it again); `terraform import` takes a full name or an id.

use std::time::Duration;

use async_trait::async_trait;
use cacheplane_types::{
    CreateInstanceRequest, Instance, InstanceAuthString, PatchInstanceRequest, ReadReplicasMode,
    Tier, TransitEncryptionMode,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{self, Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::instance_fields::{self as fields, parse_read_replicas, InstanceFields, ATTRIBUTES};
use super::instance_plan as plan;
use super::lifecycle::{self, request_id, Call};
use crate::client::{ApiError, Client};
use crate::diags;
use crate::names::Regional;
use crate::provider::{Settings, Shared};
use crate::schema::{known, schema};
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

/// [`fetch`], as a state with these `timeouts`.
async fn fetch_state(
    client: &Client,
    t: &Regional,
    prior: &InstanceFields,
    timeouts: &Value<Timeouts>,
) -> Result<Option<InstanceState>, ApiError> {
    let fields = fetch(client, t, prior).await?;
    Ok(fields.map(|fields| InstanceState {
        fields,
        timeouts: timeouts.clone(),
    }))
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
        lifecycle::run(diags, &s.client, call, timeout, &what, ATTRIBUTES)
            .await
            .map(drop)
    }

    /// The state after a create or update: the instance as the API has it now.
    async fn refreshed(
        &self,
        diags: &mut Diagnostics,
        s: &Settings,
        planned: &InstanceState,
    ) -> Option<InstanceState> {
        let t = target(&planned.fields);
        let name = t.full_name(COLLECTION);
        let fetched = fetch_state(&s.client, &t, &planned.fields, &planned.timeouts).await;
        let what = format!("reading instance {name}");
        let missing = format!("instance {name} disappeared right after its operation");
        diags::found(diags, fetched, &what, &missing, ATTRIBUTES)
    }
}

#[async_trait]
impl Resource for InstanceResource {
    type State<'a> = InstanceState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(timeouts::with_block(schema(
            "A managed Redis cache. memory_size_gb, replica_count, redis_configs, labels \
             and display_name change in place; enabling read replicas is in place; \
             tier, zones, network, range, version, AUTH and TLS replace the instance.",
            fields::attributes(false),
        )))
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
        let what = format!("reading instance {}", t.full_name(COLLECTION));
        let fetched = fetch_state(&s.client, &t, &state.fields, &state.timeouts).await;
        // Deleted outside Terraform: it leaves the state, and the next plan creates it.
        lifecycle::refreshed(diags, fetched, state, &what, ATTRIBUTES).map(|i| (i, private_state))
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
        let done = lifecycle::run(diags, &s.client, call, timeout, &what, ATTRIBUTES).await;
        if done.is_none() {
            // A create that timed out goes on in the API: keep the instance in the state
            // (Terraform marks it tainted) so that it is not lost. A failed one left
            // nothing behind.
            let (fields, timeouts) = (&planned_state.fields, &planned_state.timeouts);
            if let Ok(Some(state)) = fetch_state(&s.client, &t, fields, timeouts).await {
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
                let fetched = fetch_state(&s.client, &t, prior, &prior_state.timeouts).await;
                return Some((fetched.ok().flatten()?, planned_private_state));
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
        let what = format!("deleting instance {}", t.full_name(COLLECTION));
        let path = t.path(COLLECTION);
        lifecycle::delete_and_wait(diags, &s.client, &path, timeout, &what, ATTRIBUTES).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let s = self.shared.get(diags)?;
        let t = lifecycle::import_regional(diags, s, &id, COLLECTION, "instance")?;
        let fetched = fetch_state(&s.client, &t, &InstanceFields::default(), &Value::Null).await;
        let name = t.full_name(COLLECTION);
        let what = format!("importing instance {name}");
        lifecycle::imported(diags, fetched, "instance", &name, &what, ATTRIBUTES)
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
