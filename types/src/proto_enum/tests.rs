//! The names and numbers of the proto enums, both ways.

use serde_json::json;

use super::{expected, ProtoEnum};
use crate::encoding::{with_encoding, Encoding};
use crate::{
    CreateInstanceRequest, DataProtectionMode, FailoverRequest, InstanceState, ReadReplicasMode,
    Tier, TransitEncryptionMode,
};

/// Runs `f` with enums rendered as numbers.
fn with_numbers<R>(f: impl FnOnce() -> R) -> R {
    let numbers = Encoding {
        enum_numbers: true,
        ..Encoding::default()
    };
    with_encoding(numbers, f)
}

/// Every value as (name, number), as google.cloud.redis.v1 numbers them.
fn table<E: ProtoEnum>() -> Vec<(&'static str, i32)> {
    E::VALUES.iter().map(|v| (v.1, v.2)).collect()
}

#[test]
fn numbers_are_those_of_google_cloud_redis_v1() {
    assert_eq!(table::<Tier>(), [("BASIC", 1), ("STANDARD_HA", 3)]);
    assert_eq!(
        table::<InstanceState>(),
        [
            ("CREATING", 1),
            ("READY", 2),
            ("UPDATING", 3),
            ("DELETING", 4),
            ("REPAIRING", 5),
            ("FAILING_OVER", 9),
            ("FAILED", 0),
        ]
    );
    assert_eq!(
        table::<ReadReplicasMode>(),
        [("READ_REPLICAS_DISABLED", 1), ("READ_REPLICAS_ENABLED", 2)]
    );
    assert_eq!(
        table::<TransitEncryptionMode>(),
        [("SERVER_AUTHENTICATION", 1), ("DISABLED", 2)]
    );
    assert_eq!(
        table::<DataProtectionMode>(),
        [("LIMITED_DATA_LOSS", 1), ("FORCE_DATA_LOSS", 2)]
    );
}

#[test]
fn answers_carry_names_unless_numbers_are_asked_for() {
    let value = json!([
        Tier::StandardHa,
        InstanceState::Ready,
        InstanceState::Failed
    ]);
    assert_eq!(value, json!(["STANDARD_HA", "READY", "FAILED"]));
    let numbers = with_numbers(|| serde_json::to_value([Tier::StandardHa, Tier::Basic]).unwrap());
    assert_eq!(numbers, json!([3, 1]));
    let failed = with_numbers(|| serde_json::to_value(InstanceState::Failed).unwrap());
    assert_eq!(failed, json!(0), "a state Google lacks is unspecified");
    // The setting ends with the closure.
    assert_eq!(serde_json::to_value(Tier::Basic).unwrap(), json!("BASIC"));
}

#[test]
fn requests_take_names_or_numbers() {
    let by_name: CreateInstanceRequest = serde_json::from_value(json!({
        "tier": "STANDARD_HA", "memorySizeGb": 1,
        "readReplicasMode": "READ_REPLICAS_ENABLED", "transitEncryptionMode": "DISABLED"
    }))
    .unwrap();
    let by_number: CreateInstanceRequest = serde_json::from_value(json!({
        "tier": 3, "memorySizeGb": 1, "readReplicasMode": 2, "transitEncryptionMode": 2
    }))
    .unwrap();
    assert_eq!(by_name, by_number);
    assert_eq!(by_number.tier, Tier::StandardHa);
    assert_eq!(
        by_number.read_replicas_mode,
        Some(ReadReplicasMode::ReadReplicasEnabled)
    );
    let failover: FailoverRequest =
        serde_json::from_value(json!({"dataProtectionMode": 2})).unwrap();
    assert_eq!(
        failover.data_protection_mode,
        Some(DataProtectionMode::ForceDataLoss)
    );
}

#[test]
fn every_value_round_trips_in_both_forms() {
    fn check<E: ProtoEnum + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>() {
        for &(value, name, number) in E::VALUES {
            let named: E = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(named, value);
            assert_eq!(serde_json::to_value(value).unwrap(), json!(name));
            let rendered = with_numbers(|| serde_json::to_value(value).unwrap());
            assert_eq!(rendered, json!(number));
            if number != 0 {
                let numbered: E = serde_json::from_value(json!(number)).unwrap();
                assert_eq!(numbered, value);
            }
        }
    }
    check::<Tier>();
    check::<InstanceState>();
    check::<ReadReplicasMode>();
    check::<TransitEncryptionMode>();
    check::<DataProtectionMode>();
}

#[test]
fn unknown_values_are_errors_that_list_both_forms() {
    let err = |v: serde_json::Value| serde_json::from_value::<Tier>(v).unwrap_err().to_string();
    assert_eq!(
        err(json!("GOLD")),
        "unknown tier 'GOLD': expected BASIC (1) or STANDARD_HA (3)"
    );
    assert_eq!(
        err(json!(2)),
        "unknown tier 2: expected BASIC (1) or STANDARD_HA (3)"
    );
    // 0 is Google's "unspecified": never a value, even where a value renders as 0.
    assert!(err(json!(0)).starts_with("unknown tier 0"));
    assert!(serde_json::from_value::<InstanceState>(json!(0)).is_err());
    assert!(err(json!(-1)).starts_with("unknown tier -1"));
    assert!(err(json!(true)).contains("expected a tier"));
    assert_eq!(
        expected::<InstanceState>(),
        "CREATING (1), READY (2), UPDATING (3), DELETING (4), REPAIRING (5) or FAILING_OVER (9)"
    );
}
