use std::time::{Duration, Instant};

use super::{
    FleetSize, Membership, NodeInfo, Solo,
    etcd::{RegistryKeys, heartbeat_period, lead_deadline},
    load_or_create_node_id, validate_node_id,
};

fn info(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        version: "0.0.0".into(),
        xks_addr: "127.0.0.1:8443".into(),
        admin_addr: None,
        started_at: 1,
        heartbeat_at: 1,
    }
}

#[test]
fn node_ids_follow_the_naming_rule() {
    for ok in ["a", "node-1", "eu-west-1.node_02", &"x".repeat(64)] {
        assert!(validate_node_id(ok).is_ok(), "{ok}");
    }
    for (bad, why) in [
        ("", "empty"),
        (&*"x".repeat(65), "longer than 64"),
        ("node/1", "only ASCII"),
        ("node 1", "only ASCII"),
        ("nöde", "only ASCII"),
        ("-node", "start with"),
        (".node", "start with"),
    ] {
        let e = validate_node_id(bad).expect_err(bad).to_string();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn a_generated_node_id_is_kept_and_a_configured_one_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = load_or_create_node_id(None, dir.path()).expect("generated");
    assert!(first.starts_with("node-") && first.len() == 13, "{first}");
    validate_node_id(&first).expect("valid");
    assert_eq!(
        load_or_create_node_id(None, dir.path()).expect("kept"),
        first
    );
    assert_eq!(
        load_or_create_node_id(Some("n1"), dir.path()).expect("configured"),
        "n1"
    );
    assert!(load_or_create_node_id(Some("bad id"), dir.path()).is_err());
    std::fs::write(dir.path().join("node-id"), "not/valid\n").expect("write");
    let e = load_or_create_node_id(None, dir.path()).expect_err("tampered");
    assert!(e.to_string().contains("not/valid"), "{e}");
}

#[test]
fn a_leader_stops_leading_before_its_lease_can_expire() {
    let ttl = Duration::from_secs(9);
    let now = Instant::now();
    assert_eq!(lead_deadline(now, ttl), now + Duration::from_secs(6));
    assert!(lead_deadline(now, ttl) < now + ttl);
    // Heartbeats come often enough to keep the lead continuous.
    assert!(heartbeat_period(ttl) < lead_deadline(now, ttl) - now);
    assert_eq!(
        heartbeat_period(Duration::from_secs(2)),
        Duration::from_secs(2) / 3
    );
    assert!(heartbeat_period(Duration::from_millis(100)) >= Duration::from_millis(200));
}

#[test]
fn registry_keys_live_under_the_store_prefix() {
    let k = RegistryKeys::new("keyhold/");
    assert_eq!(k.nodes(), "keyhold/nodes/");
    assert_eq!(k.node("n1"), "keyhold/nodes/n1");
    assert_eq!(k.leader(), "keyhold/leader");
    assert!(k.node("n1").starts_with(&k.nodes()));
}

#[test]
fn a_lone_node_is_its_own_fleet_and_leader() {
    let solo = Solo::new(info("n1"));
    assert_eq!(solo.node_id(), "n1");
    assert!(solo.is_leader());
    let view = solo.view();
    assert_eq!(view.nodes.len(), 1);
    assert_eq!(view.leader.as_deref(), Some("n1"));
    assert!(view.reachable);
    assert!(view.nodes[0].heartbeat_at > 1, "the heartbeat is now");
}

#[test]
fn the_fleet_is_never_smaller_than_the_node_answering() {
    let fleet = FleetSize::new(0);
    assert_eq!(fleet.get(), 1);
    fleet.set(3);
    assert_eq!(fleet.clone().get(), 3);
    fleet.set(0);
    assert_eq!(fleet.get(), 1);
}
