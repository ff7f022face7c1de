//! The `timeouts` block of the resources whose changes are long-running operations: how
//! long create, update and delete wait for their operation (`30s`, `20m`, `1h`; 20
//! minutes when unset).

use std::time::Duration;

use cacheplane_types::duration::parse_duration;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Block, Description, NestedBlock, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use crate::schema::{attributes, STRING};

/// How long an operation is waited for when the block does not say.
pub const DEFAULT: Duration = Duration::from_secs(20 * 60);

/// The `timeouts` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeouts {
    /// For create.
    pub create: Value<String>,
    /// For in-place updates.
    pub update: Value<String>,
    /// For delete.
    pub delete: Value<String>,
}

/// Which operation is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A create.
    Create,
    /// An in-place update.
    Update,
    /// A delete.
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// `schema` with the `timeouts` block.
pub fn with_block(mut schema: Schema) -> Schema {
    schema.block.blocks.insert("timeouts".into(), block());
    schema
}

/// The schema of the block: at most one, each setting optional.
pub fn block() -> NestedBlock {
    let optional = |what: &str| tf_provider::schema::Attribute {
        attr_type: STRING,
        description: Description::plain(format!(
            "How long {what} waits for its operation, e.g. 30s, 20m or 1h (default 20m)"
        )),
        constraint: tf_provider::schema::AttributeConstraint::Optional,
        sensitive: false,
        deprecated: false,
    };
    NestedBlock::Optional(Block {
        description: Description::plain("How long to wait for the operations"),
        attributes: attributes(vec![
            ("create", optional("create")),
            ("update", optional("an in-place update")),
            ("delete", optional("delete")),
        ]),
        ..Default::default()
    })
}

/// The timeout of `action`: the block's setting or [`DEFAULT`].
pub fn of(t: &Value<Timeouts>, action: Action) -> Result<Duration, String> {
    let setting = t.as_ref_option().and_then(|t| match action {
        Action::Create => t.create.as_ref_option(),
        Action::Update => t.update.as_ref_option(),
        Action::Delete => t.delete.as_ref_option(),
    });
    match setting {
        Some(s) => parse_duration(s),
        None => Ok(DEFAULT),
    }
}

/// The timeout of `action`, or an error on `timeouts.ACTION` in `diags`.
pub fn get(diags: &mut Diagnostics, t: &Value<Timeouts>, action: Action) -> Option<Duration> {
    match of(t, action) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.error_short(
                format!("timeouts.{}: {e}", action.name()),
                AttributePath::new("timeouts")
                    .index(0)
                    .attribute(action.name()),
            );
            None
        }
    }
}

/// Checks every setting of the block (at validation, so a typo fails the plan).
pub fn validate(diags: &mut Diagnostics, t: &Value<Timeouts>) {
    for action in [Action::Create, Action::Update, Action::Delete] {
        let _ = get(diags, t, action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_the_default() {
        let t = Value::Value(Timeouts {
            create: Value::Value("90s".into()),
            update: Value::Null,
            delete: Value::Value("soon".into()),
        });
        assert_eq!(of(&t, Action::Create), Ok(Duration::from_secs(90)));
        assert_eq!(of(&t, Action::Update), Ok(DEFAULT));
        assert!(of(&t, Action::Delete).is_err());
        assert_eq!(of(&Value::Null, Action::Delete), Ok(DEFAULT));
        let mut d = Diagnostics::default();
        validate(&mut d, &t);
        assert_eq!(d.errors.len(), 1);
        assert!(d.errors[0].summary.starts_with("timeouts.delete:"));
    }
}
