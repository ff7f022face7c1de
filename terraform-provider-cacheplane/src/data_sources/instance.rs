//! `data "cacheplane_instance"`: one existing instance, by id (in the provider's project
//! and region unless set): every attribute of the resource, AUTH string included
//! (sensitive).

use async_trait::async_trait;
use tf_provider::schema::{Block, Description, Schema};
use tf_provider::value::ValueEmpty;
use tf_provider::{DataSource, Diagnostics};

use crate::diags;
use crate::names::Regional;
use crate::provider::Shared;
use crate::resources::instance::fetch;
use crate::resources::instance_fields::{attributes, InstanceFields, ATTRIBUTES};
use crate::schema::known;

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
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain("An existing instance"),
                attributes: attributes(true),
                ..Default::default()
            },
        })
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
        match fetch(&s.client, &t, &config).await {
            Ok(Some(fields)) => Some(fields),
            Ok(None) => {
                diags.root_error_short(format!("instance {name} does not exist"));
                None
            }
            Err(e) => {
                diags::api(diags, &format!("reading instance {name}"), &e, ATTRIBUTES);
                None
            }
        }
    }
}
