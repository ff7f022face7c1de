//! `data "cacheplane_instance"`: one existing instance, by id (in the provider's project
//! and region unless set): every attribute of the resource, AUTH string included
//! (sensitive).

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::ValueEmpty;
use tf_provider::{DataSource, Diagnostics};

use crate::diags;
use crate::names::Regional;
use crate::provider::Shared;
use crate::resources::instance::fetch;
use crate::resources::instance_fields::{attributes, InstanceFields, ATTRIBUTES};
use crate::schema::{known, schema};

/// The `cacheplane_instance` data source.
pub struct InstanceDataSource {
    shared: Shared,
}

impl InstanceDataSource {
    /// The data source, using the provider's settings once configured.
    pub fn new(shared: Shared) -> Self {
        InstanceDataSource { shared }
    }
}

#[async_trait]
impl DataSource for InstanceDataSource {
    type State<'a> = InstanceFields;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema("An existing instance", attributes(true)))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let s = self.shared.get(diags)?;
        let t = Regional {
            project: known(&config.project).unwrap_or(&s.project).to_string(),
            region: known(&config.region).unwrap_or(&s.region).to_string(),
            id: known(&config.instance_id).unwrap_or_default().to_string(),
        };
        let name = t.full_name("instances");
        let fetched = fetch(&s.client, &t, &config).await;
        let (what, missing) = (
            format!("reading instance {name}"),
            format!("instance {name} does not exist"),
        );
        diags::found(diags, fetched, &what, &missing, ATTRIBUTES)
    }
}
