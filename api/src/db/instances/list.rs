//! The filtered, paged instance list: the one query assembled with `QueryBuilder`.

use cacheplane_types::Tier;
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use super::{InstanceRow, INSTANCE_SELECT};
use crate::error::ApiResult;

/// A filter of the instance list: every term must hold.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    /// The terms.
    pub terms: Vec<Term>,
}

/// One condition of a [`Filter`].
#[derive(Debug, PartialEq)]
pub enum Term {
    /// The instance is in this state (its wire name).
    State(&'static str),
    /// The instance has this tier.
    Tier(Tier),
    /// The instance has the label (with this value, if given).
    Label {
        /// Label key.
        key: String,
        /// Label value; `None` for "has the label".
        value: Option<String>,
    },
}

/// Up to `limit` of a project's instances in a region (`-` for every region) that match
/// `filter`, by region and name, after the key `after` (region, name).
pub async fn list(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    filter: &Filter,
    after: Option<(String, String)>,
    limit: i64,
) -> ApiResult<Vec<InstanceRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(INSTANCE_SELECT);
    q.push(" where i.project_id = ")
        .push_bind(project.to_string());
    if region != "-" {
        q.push(" and i.region_id = ").push_bind(region.to_string());
    }
    if let Some((r, n)) = after {
        q.push(" and (i.region_id, i.name) > (")
            .push_bind(r)
            .push(", ")
            .push_bind(n)
            .push(")");
    }
    push_terms(&mut q, "i", filter);
    q.push(" order by i.region_id, i.name limit ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// Appends ` and …` for each term of `filter` to a query over a table aliased `alias`
/// with `state`, `labels` (jsonb) and, for tier terms, `tier_id` columns.
pub fn push_terms(q: &mut QueryBuilder<'_, Postgres>, alias: &str, filter: &Filter) {
    for term in &filter.terms {
        match term {
            Term::State(s) => {
                q.push(format!(" and {alias}.state = ")).push_bind(*s);
            }
            Term::Label { key, value: None } => {
                q.push(format!(" and {alias}.labels ? "))
                    .push_bind(key.clone());
            }
            Term::Label {
                key,
                value: Some(v),
            } => {
                q.push(format!(" and {alias}.labels ->> "))
                    .push_bind(key.clone())
                    .push(" = ")
                    .push_bind(v.clone());
            }
            Term::Tier(t) => {
                q.push(format!(" and {alias}.tier_id = "))
                    .push_bind(t.as_str());
            }
        }
    }
}
