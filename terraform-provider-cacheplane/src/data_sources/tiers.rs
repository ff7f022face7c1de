//! `data "cacheplane_tiers"`: the service tiers and their limits (memory range, replica
//! range, automatic failover).

use async_trait::async_trait;
use cacheplane_types::ListTiersResponse;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::diags;
use crate::provider::Shared;
use crate::schema::{attributes, computed, object_list, schema, BOOL, NUMBER, STRING};

/// One tier with its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierAttr {
    /// BASIC or STANDARD_HA.
    pub tier: String,
    /// What it gives.
    pub description: String,
    /// Smallest memory_size_gb.
    pub min_memory_size_gb: i64,
    /// Largest memory_size_gb.
    pub max_memory_size_gb: i64,
    /// Fewest replicas.
    pub min_replica_count: i64,
    /// Most replicas.
    pub max_replica_count: i64,
    /// Whether it fails over automatically.
    pub automatic_failover: bool,
}

/// The data source's attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TiersState {
    /// Every tier.
    pub tiers: Value<Vec<TierAttr>>,
}

/// The `cacheplane_tiers` data source.
pub struct TiersDataSource {
    shared: Shared,
}

impl TiersDataSource {
    /// The data source, using the provider's settings once configured.
    pub fn new(shared: Shared) -> Self {
        TiersDataSource { shared }
    }
}

#[async_trait]
impl DataSource for TiersDataSource {
    type State<'a> = TiersState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let tier = object_list(&[
            ("tier", STRING),
            ("description", STRING),
            ("min_memory_size_gb", NUMBER),
            ("max_memory_size_gb", NUMBER),
            ("min_replica_count", NUMBER),
            ("max_replica_count", NUMBER),
            ("automatic_failover", BOOL),
        ]);
        Some(schema(
            "The service tiers and their limits",
            attributes(vec![(
                "tiers",
                computed(tier, "Every tier with its limits"),
            )]),
        ))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        _config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let s = self.shared.get(diags)?;
        let listed = s.client.get::<ListTiersResponse>(&["tiers"]).await;
        let list = diags::ok(diags, listed, "listing the tiers", &[])?;
        let tiers = list.tiers.into_iter().map(|t| TierAttr {
            tier: t.tier.as_str().to_string(),
            description: t.description,
            min_memory_size_gb: t.min_memory_size_gb.into(),
            max_memory_size_gb: t.max_memory_size_gb.into(),
            min_replica_count: t.min_replica_count.into(),
            max_replica_count: t.max_replica_count.into(),
            automatic_failover: t.automatic_failover,
        });
        Some(TiersState {
            tiers: Value::Value(tiers.collect()),
        })
    }
}
