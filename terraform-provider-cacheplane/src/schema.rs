//! Short constructors for the schemas of the resources and data sources, and the helpers
//! their plans share.

use std::collections::HashMap;

use std::borrow::Cow;

use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::Value;
use tf_provider::AttributePath;

/// A string attribute.
pub const STRING: AttributeType = AttributeType::String;
/// A number attribute.
pub const NUMBER: AttributeType = AttributeType::Number;
/// A bool attribute.
pub const BOOL: AttributeType = AttributeType::Bool;

/// A map of strings.
pub fn string_map() -> AttributeType {
    AttributeType::Map(Box::new(AttributeType::String))
}

/// A list of strings.
pub fn string_list() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::String))
}

/// A list of objects with these (name, type) fields.
pub fn object_list(fields: &[(&str, AttributeType)]) -> AttributeType {
    AttributeType::List(Box::new(AttributeType::Object(
        fields
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect(),
    )))
}

fn attribute(t: AttributeType, constraint: AttributeConstraint, description: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::plain(description),
        constraint,
        sensitive: false,
        deprecated: false,
    }
}

/// An attribute the configuration must set.
pub fn required(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::Required, description)
}

/// An attribute the configuration may set; when it does not, the API's value is kept.
pub fn optional(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::OptionalComputed, description)
}

/// An attribute only the API sets.
pub fn computed(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::Computed, description)
}

/// `a`, marked sensitive: Terraform never shows its value in plans or outputs.
pub fn sensitive(mut a: Attribute) -> Attribute {
    a.sensitive = true;
    a
}

/// The attributes of a block, by name.
pub fn attributes(list: Vec<(&str, Attribute)>) -> HashMap<String, Attribute> {
    list.into_iter().map(|(n, a)| (n.to_string(), a)).collect()
}

/// The schema (version 1) of a resource or data source: its description and attributes,
/// no nested blocks.
pub fn schema(description: &str, attributes: HashMap<String, Attribute>) -> Schema {
    Schema {
        version: 1,
        block: Block {
            description: Description::plain(description),
            attributes,
            ..Default::default()
        },
    }
}

/// The attributes of `list` (name, whether it changes) that change: a plan replaces the
/// resource for each of them.
pub fn replaced(list: &[(&'static str, bool)]) -> Vec<AttributePath> {
    list.iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| AttributePath::new(Cow::Borrowed(*name)))
        .collect()
}

/// `v`, or unknown when it is null: an optional and computed attribute the configuration
/// leaves out is decided by the API at apply.
pub fn or_unknown<T>(v: Value<T>) -> Value<T> {
    match v {
        Value::Null => Value::Unknown,
        v => v,
    }
}

/// Whether a planned value differs from the prior one (an unknown one may).
pub fn changes<T: PartialEq>(prior: &Value<T>, planned: &Value<T>) -> bool {
    planned.is_unknown() || prior != planned
}

/// A known string, or `None`.
pub fn known(v: &Value<String>) -> Option<&str> {
    v.as_ref_option().map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_counts_as_a_change() {
        let a: Value<i64> = Value::Value(1);
        assert!(!changes(&a, &Value::Value(1)));
        assert!(changes(&a, &Value::Value(2)));
        assert!(changes(&a, &Value::Unknown));
        assert_eq!(or_unknown::<i64>(Value::Null), Value::Unknown);
        assert_eq!(or_unknown(Value::Value(3)), Value::Value(3));
    }

    #[test]
    fn only_changed_attributes_replace() {
        let got = replaced(&[("a", false), ("b", true), ("c", true)]);
        assert_eq!(got, vec![AttributePath::new("b"), AttributePath::new("c")]);
    }
}
