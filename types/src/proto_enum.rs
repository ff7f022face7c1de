//! Enums that Memorystore's API (`google.cloud.redis.v1`) has too: each value has its
//! wire name (`STANDARD_HA`) and its number in Google's proto (`3`).
//!
//! Requests may carry either form. Answers carry the name, or the number when the
//! encoding in force says so (`crate::encoding`): the API renders its answers that way
//! when a client asks for `$alt=json;enum-encoding=int`, as Google's client libraries do. Only the enums declared
//! with [`proto_enum!`] change form, so no other string of an answer is touched.

use std::fmt;

/// An enum with a wire name and a `google.cloud.redis.v1` number for every value.
pub trait ProtoEnum: Sized + Copy + PartialEq + 'static {
    /// What a value is, for errors: `tier`, `instance state`.
    const WHAT: &'static str;
    /// Every value with its wire name and its number. A number is unique except 0, which
    /// Google's enums keep for "unspecified": a value Google lacks renders as 0 and is
    /// never read from a 0.
    const VALUES: &'static [(Self, &'static str, i32)];

    /// The wire name.
    fn name(self) -> &'static str {
        entry(self).1
    }

    /// The number in `google.cloud.redis.v1`.
    fn number(self) -> i32 {
        entry(self).2
    }

    /// The value of a wire name.
    fn from_name(name: &str) -> Option<Self> {
        Self::VALUES.iter().find(|v| v.1 == name).map(|v| v.0)
    }

    /// The value of a number; 0 (unspecified) is none.
    fn from_number(number: i64) -> Option<Self> {
        Self::VALUES
            .iter()
            .find(|v| v.2 != 0 && i64::from(v.2) == number)
            .map(|v| v.0)
    }
}

fn entry<E: ProtoEnum>(value: E) -> &'static (E, &'static str, i32) {
    E::VALUES
        .iter()
        .find(|v| v.0 == value)
        .expect("every value of a proto enum is in its VALUES")
}

/// Serializes `value` as its name, or as its number when the encoding in force asks
/// for numbers (`crate::encoding`).
pub fn serialize<E: ProtoEnum, S: serde::Serializer>(value: E, s: S) -> Result<S::Ok, S::Error> {
    if crate::encoding::current().enum_numbers {
        s.serialize_i32(value.number())
    } else {
        s.serialize_str(value.name())
    }
}

/// Deserializes a name or a number; anything else is an error that lists both forms.
pub fn deserialize<'de, E: ProtoEnum, D: serde::Deserializer<'de>>(d: D) -> Result<E, D::Error> {
    d.deserialize_any(NameOrNumber(std::marker::PhantomData))
}

/// "BASIC (1) or STANDARD_HA (3)": the accepted values, for errors.
pub fn expected<E: ProtoEnum>() -> String {
    let items: Vec<String> = E::VALUES
        .iter()
        .filter(|v| v.2 != 0)
        .map(|v| format!("{} ({})", v.1, v.2))
        .collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

struct NameOrNumber<E>(std::marker::PhantomData<E>);

impl<E: ProtoEnum> NameOrNumber<E> {
    fn unknown<Err: serde::de::Error>(value: impl fmt::Display) -> Err {
        Err::custom(format!(
            "unknown {} {value}: expected {}",
            E::WHAT,
            expected::<E>()
        ))
    }
}

impl<E: ProtoEnum> serde::de::Visitor<'_> for NameOrNumber<E> {
    type Value = E;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}: {}", E::WHAT, expected::<E>())
    }

    fn visit_str<Err: serde::de::Error>(self, v: &str) -> Result<E, Err> {
        E::from_name(v).ok_or_else(|| Self::unknown(format!("'{v}'")))
    }

    fn visit_i64<Err: serde::de::Error>(self, v: i64) -> Result<E, Err> {
        E::from_number(v).ok_or_else(|| Self::unknown(v))
    }

    fn visit_u64<Err: serde::de::Error>(self, v: u64) -> Result<E, Err> {
        i64::try_from(v)
            .ok()
            .and_then(E::from_number)
            .ok_or_else(|| Self::unknown(v))
    }
}

/// The OpenAPI schema of a proto enum: its names or its numbers, described by `doc` (the
/// type's doc comment) and the table of both.
#[cfg(feature = "openapi")]
pub fn schema<E: ProtoEnum>(doc: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let doc: Vec<&str> = doc
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let table: Vec<String> = E::VALUES
        .iter()
        .map(|v| format!("`{}` = {}", v.1, v.2))
        .collect();
    let description = format!(
        "{}\n\nThe name, or its number in google.cloud.redis.v1 (answers carry numbers when \
         `$alt=json;enum-encoding=int` is asked for): {}.",
        doc.join("\n").trim(),
        table.join(", ")
    );
    let mut numbers: Vec<i32> = E::VALUES.iter().map(|v| v.2).collect();
    numbers.dedup();
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(E::VALUES.iter().map(|v| v.1))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                    utoipa::openapi::schema::KnownFormat::Int32,
                )))
                .enum_values(Some(numbers)),
        )
        .description(Some(description))
        .into()
}

/// Declares an enum of wire names and `google.cloud.redis.v1` numbers: the enum with its
/// docs, [`ProtoEnum`], `as_str`/`parse`/`ALL`, serde in both forms and, with the
/// `openapi` feature, its schema.
///
/// ```ignore
/// proto_enum! {
///     /// The service tier of an instance.
///     pub enum Tier("tier") {
///         /// One node.
///         Basic = "BASIC" / 1,
///         /// A primary and replicas.
///         StandardHa = "STANDARD_HA" / 3,
///     }
/// }
/// ```
///
/// `default Variant` after the name derives `Default`.
macro_rules! proto_enum {
    (
        $(#[doc = $doc:literal])*
        $vis:vis enum $name:ident ($what:literal) $(default $default:ident)? {
            $( $(#[doc = $vdoc:literal])* $variant:ident = $wire:literal / $number:literal ),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[doc = $vdoc])* $variant, )+
        }

        impl $crate::proto_enum::ProtoEnum for $name {
            const WHAT: &'static str = $what;
            const VALUES: &'static [(Self, &'static str, i32)] =
                &[$( ($name::$variant, $wire, $number), )+];
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The wire name, also stored in the database.
            pub fn as_str(self) -> &'static str {
                $crate::proto_enum::ProtoEnum::name(self)
            }

            /// Parses the wire name.
            pub fn parse(s: &str) -> Option<$name> {
                <$name as $crate::proto_enum::ProtoEnum>::from_name(s)
            }
        }

        $(
            impl Default for $name {
                fn default() -> Self {
                    $name::$default
                }
            }
        )?

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::proto_enum::serialize(*self, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::proto_enum::deserialize(d)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::proto_enum::schema::<$name>(concat!($($doc, "\n"),*))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

pub(crate) use proto_enum;

#[cfg(test)]
mod tests;
