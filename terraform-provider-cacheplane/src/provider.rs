//! The provider: its settings (`endpoint`, `token`, `project`, `region`, each also from
//! the environment), the client they make, and the resources and data sources it serves.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use cacheplane_types::secret::Secret;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use crate::client::Client;
use crate::data_sources::{InstanceDataSource, TiersDataSource, ZonesDataSource};
use crate::resources::{ConnectorResource, InstanceResource, NetworkResource};
use crate::schema::{attributes, optional, schema, sensitive, STRING};

/// What the resources use once Terraform has configured the provider.
#[derive(Debug)]
pub struct Settings {
    /// The API client, with the token.
    pub client: Client,
    /// The project resources belong to unless they say otherwise.
    pub project: String,
    /// The region of instances and connectors unless they say otherwise.
    pub region: String,
}

/// The settings, shared by the provider and every resource and data source; set once by
/// `configure`.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<OnceLock<Settings>>);

impl Shared {
    /// The settings, or an error in `diags` when the provider is not configured yet.
    pub fn get(&self, diags: &mut Diagnostics) -> Option<&Settings> {
        let s = self.0.get();
        if s.is_none() {
            diags.root_error_short("the cacheplane provider is not configured yet");
        }
        s
    }
}

/// The provider's configuration block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    /// The API's base URL.
    pub endpoint: Value<String>,
    /// The bearer token.
    pub token: Value<String>,
    /// The default project.
    pub project: Value<String>,
    /// The default region.
    pub region: Value<String>,
}

/// The Cacheplane provider.
#[derive(Debug, Default)]
pub struct CacheplaneProvider {
    shared: Shared,
}

/// A setting from the configuration, else from environment variable `var`; an error on
/// the attribute when neither has it.
fn setting(
    diags: &mut Diagnostics,
    value: &Value<String>,
    attr: &'static str,
    var: &str,
) -> Option<String> {
    let from_env = || std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    match value.as_ref_option().filter(|v| !v.is_empty()) {
        Some(v) => Some(v.clone()),
        None => match from_env() {
            Some(v) => Some(v),
            None => {
                diags.error_short(
                    format!("{attr} is not set: set it in the provider block or in {var}"),
                    AttributePath::new(attr),
                );
                None
            }
        },
    }
}

#[async_trait]
impl Provider for CacheplaneProvider {
    type Config<'a> = Config;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(
            "Cacheplane: managed Redis caches on hosts you own. Each setting may \
             also come from the environment (CACHEPLANE_ENDPOINT, CACHEPLANE_TOKEN, \
             CACHEPLANE_PROJECT, CACHEPLANE_REGION).",
            attributes(vec![
                (
                    "endpoint",
                    optional(
                        STRING,
                        "The API's base URL, e.g. http://127.0.0.1:8080 (CACHEPLANE_ENDPOINT)",
                    ),
                ),
                (
                    "token",
                    sensitive(optional(STRING, "The API token (CACHEPLANE_TOKEN)")),
                ),
                (
                    "project",
                    optional(STRING, "The project of the resources (CACHEPLANE_PROJECT)"),
                ),
                (
                    "region",
                    optional(
                        STRING,
                        "The region of instances and connectors, e.g. local (CACHEPLANE_REGION)",
                    ),
                ),
            ]),
        ))
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let endpoint = setting(diags, &config.endpoint, "endpoint", "CACHEPLANE_ENDPOINT");
        let token = setting(diags, &config.token, "token", "CACHEPLANE_TOKEN");
        let project = setting(diags, &config.project, "project", "CACHEPLANE_PROJECT");
        let region = setting(diags, &config.region, "region", "CACHEPLANE_REGION");
        let (endpoint, token, project, region) = (endpoint?, token?, project?, region?);
        let client = match Client::new(&endpoint, Secret::new(token)) {
            Ok(c) => c,
            Err(e) => {
                diags.error_short(format!("endpoint: {e}"), AttributePath::new("endpoint"));
                return None;
            }
        };
        // Terraform configures a provider process once; a second call keeps the first.
        let _ = self.shared.0.set(Settings {
            client,
            project,
            region,
        });
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "instance" => InstanceResource::new(self.shared.clone()),
            "network" => NetworkResource::new(self.shared.clone()),
            "connector" => ConnectorResource::new(self.shared.clone()),
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {
            "instance" => InstanceDataSource::new(self.shared.clone()),
            "zones" => ZonesDataSource::new(self.shared.clone()),
            "tiers" => TiersDataSource::new(self.shared.clone()),
        })
    }
}
