use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_types::{NodeRole, ReadEndpointSpec};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::*;

fn primary(read_endpoint: Option<ReadEndpointSpec>) -> NodeSpec {
    NodeSpec {
        network: None,
        switchover: None,
        node_id: Uuid::from_u128(1),
        instance: "projects/p/locations/local/instances/c1".into(),
        engine_version: "REDIS_7_0".into(),
        role: NodeRole::Primary,
        address: "127.64.0.4".into(),
        port: 6380,
        endpoint_address: Some("127.64.0.2".into()),
        primary_address: None,
        maxmemory_bytes: 1 << 30,
        redis_configs: BTreeMap::new(),
        read_endpoint,
        restart_in_place: false,
        auth_string: Some("pw".into()),
        admin_secret: None,
        write_fence: None,
        tls: None,
    }
}

fn read_endpoint(address: &str, replicas: &[&str]) -> ReadEndpointSpec {
    ReadEndpointSpec {
        address: address.into(),
        port: 6380,
        replicas: replicas.iter().map(|r| r.to_string()).collect(),
    }
}

#[test]
fn endpoints_come_from_primaries_with_a_read_endpoint() {
    assert!(desired(&[primary(None)]).is_empty());
    let spec = primary(Some(read_endpoint(
        "127.64.0.3",
        &["127.64.0.5", "127.64.0.4", "127.64.0.2", "127.64.0.6"],
    )));
    let want = desired(&[spec]);
    let config = want
        .get(&("127.64.0.3".to_string(), 6380))
        .expect("the endpoint");
    assert_eq!(
        config.replicas,
        vec![("127.64.0.5".into(), 6380), ("127.64.0.6".into(), 6380)],
        "replicas on the node's port, never the primary itself"
    );
    assert_eq!(
        config.auth,
        vec![Login::tenant_auth("pw")],
        "no admin secret: the AUTH string"
    );
    assert!(
        !format!("{config:?}").contains("pw"),
        "Debug hides the auth"
    );
}

/// An address in 127.79.0.0/16 that concurrent test runs are unlikely to share.
fn address(n: u8) -> String {
    format!("127.79.{}.{n}", std::process::id() % 250 + 1)
}

#[tokio::test]
async fn no_healthy_replica_closes_new_connections_and_removal_stops_listening() {
    let ep = address(1);
    // Nothing listens at the replica's address: it never becomes healthy.
    let spec = primary(Some(read_endpoint(&ep, &[&address(2)])));
    let mut endpoints = ReadEndpoints::new();
    endpoints.update(std::slice::from_ref(&spec));
    let status = endpoints.status();
    assert_eq!(status.len(), 1);
    assert!(status[0].listening);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!endpoints.status()[0].backends[0].healthy);

    let mut c = tokio::net::TcpStream::connect((ep.as_str(), 6380))
        .await
        .expect("the endpoint accepts");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "refused: closed without a byte");

    // The same config again changes nothing; without the read endpoint it stops.
    endpoints.update(std::slice::from_ref(&spec));
    assert_eq!(endpoints.status().len(), 1);
    endpoints.update(&[primary(None)]);
    assert!(endpoints.status().is_empty());
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect((ep.as_str(), 6380))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "no longer listening");
}
