//! `data "cacheplane_zones"`: the zone ids of a region (the provider's unless set), for
//! `location_id` and `alternative_location_id`.

use async_trait::async_trait;
use cacheplane_types::ListZonesResponse;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::diags;
use crate::provider::Shared;
use crate::schema::{attributes, computed, known, optional, schema, string_list, STRING};

/// The data source's attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZonesState {
    /// The region.
    pub region: Value<String>,
    /// Its zone ids, e.g. `local-a`.
    pub zones: Value<Vec<String>>,
}

/// The `cacheplane_zones` data source.
pub struct ZonesDataSource {
    shared: Shared,
}

impl ZonesDataSource {
    /// The data source, using the provider's settings once configured.
    pub fn new(shared: Shared) -> Self {
        ZonesDataSource { shared }
    }
}

#[async_trait]
impl DataSource for ZonesDataSource {
    type State<'a> = ZonesState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(
            "The zones of a region",
            attributes(vec![
                (
                    "region",
                    optional(STRING, "The region (the provider's unless set)"),
                ),
                (
                    "zones",
                    computed(string_list(), "Its zone ids, e.g. local-a"),
                ),
            ]),
        ))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let s = self.shared.get(diags)?;
        let region = known(&config.region).unwrap_or(&s.region).to_string();
        let listed = s
            .client
            .get::<ListZonesResponse>(&["regions", &region, "zones"])
            .await;
        let what = format!("listing the zones of region {region}");
        let list = diags::ok(diags, listed, &what, &["region"])?;
        Some(ZonesState {
            zones: Value::Value(list.zones.into_iter().map(|z| z.zone_id).collect()),
            region: Value::Value(region),
        })
    }
}
