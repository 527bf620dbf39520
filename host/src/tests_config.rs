//! Settings parsing and validation: TOML, human units, and every refusal.
use super::*;

#[test]
fn toml_with_human_units() {
    let s = Settings::from_toml(
        r#"
        data_dir = "/var/lib/sluice"
        listen = "0.0.0.0:9000"
        max_request_bytes = "1 MiB"
        segment_bytes = "512MiB"
        shutdown_timeout = "250ms"
        "#,
    )
    .unwrap();
    assert_eq!(s.max_request_bytes, ByteSize::mib(1));
    assert_eq!(s.segment_bytes, ByteSize::mib(512));
    assert_eq!(s.shutdown_timeout, Duration::from_millis(250));
    assert_eq!(s.cache_bytes, Settings::default().cache_bytes);
    s.validate().unwrap();
}

#[test]
fn bad_settings_are_refused_with_a_message() {
    assert!(
        Settings::from_toml("nonsense = 1")
            .unwrap_err()
            .message()
            .contains("nonsense")
    );
    let s = Settings {
        max_batch_bytes: ByteSize::gib(1),
        ..Settings::default()
    };
    assert!(s.validate().unwrap_err().message().contains("max_batch_bytes"));
    let s = Settings {
        auth_token: Some(String::new()),
        ..Settings::default()
    };
    assert!(s.validate().is_err());
}

#[test]
fn wal_backend_settings_are_parsed_and_checked() {
    let s = Settings::from_toml(
        "wal = \"object\"\nwal_object_interval = \"20ms\"\nwal_object_max_bytes = \"1MiB\"\nwal_objects_in_flight = 8",
    )
    .unwrap();
    assert_eq!(s.wal, WalKind::Object);
    let o = s.wal_object_options();
    assert_eq!(
        (o.interval, o.max_bytes, o.in_flight),
        (Duration::from_millis(20), 1 << 20, 8)
    );
    s.validate().unwrap();
    assert_eq!(Settings::default().wal, WalKind::Local);
    assert!(
        Settings::from_toml("wal = \"disk\"")
            .unwrap_err()
            .message()
            .contains("disk")
    );
    for (s, field) in [
        (
            Settings {
                wal_objects_in_flight: 0,
                ..Settings::default()
            },
            "wal_objects_in_flight",
        ),
        (
            Settings {
                wal_object_interval: Duration::ZERO,
                ..Settings::default()
            },
            "wal_object_interval",
        ),
        (
            Settings {
                wal_object_max_bytes: ByteSize::b(10),
                ..Settings::default()
            },
            "wal_object_max_bytes",
        ),
    ] {
        assert!(s.validate().unwrap_err().message().contains(field), "{field}");
    }
}

#[test]
fn cluster_section_is_parsed_and_checked() {
    let s = Settings::from_toml(
        r#"
        [cluster]
        node_id = 2
        secret = "s"
        nodes = { "1" = "127.0.0.1:8081", "2" = "http://127.0.0.1:8082/" }
        replication_max_bytes = "1MiB"
        replica_lag_max = "2s"
        "#,
    )
    .unwrap();
    s.validate().unwrap();
    let c = s.cluster.as_ref().unwrap();
    assert_eq!(c.replica_lag_max, Duration::from_secs(2));
    assert_eq!(c.settings_sync, Duration::from_secs(30), "the documented default");
    let peers = c.peers("http").unwrap();
    assert_eq!(peers[&1], "http://127.0.0.1:8081");
    assert_eq!(peers[&2], "http://127.0.0.1:8082");
    // Unset: the node count, at most 3.
    assert_eq!(c.kafka_replication_factor(), 2);
    let mut five = c.clone();
    five.nodes = (1..=5)
        .map(|n| (n.to_string(), format!("127.0.0.1:{}", 8080 + n)))
        .collect();
    assert_eq!(five.kafka_replication_factor(), 3);
    five.default_replication_factor = Some(5);
    assert_eq!(five.kafka_replication_factor(), 5);
    for bad in [
        r#"[cluster]
        node_id = 1
        secret = "s"
        nodes = { "1" = "127.0.0.1:8081", "2" = "127.0.0.1:8082" }
        default_replication_factor = 3"#,
        r#"[cluster]
        node_id = 1
        secret = "s"
        nodes = { "1" = "127.0.0.1:8081", "2" = "127.0.0.1:8082" }
        default_replication_factor = 0"#,
        r#"[cluster]
        node_id = 3
        secret = "s"
        nodes = { "1" = "127.0.0.1:8081" }"#,
        r#"[cluster]
        node_id = 1
        secret = "s"
        nodes = { "one" = "127.0.0.1:8081" }"#,
        r#"[cluster]
        node_id = 1
        secret = "s"
        nodes = { "1" = "127.0.0.1:8081" }
        replication_max_bytes = "10B""#,
        r#"[cluster]
        node_id = 1
        nodes = { "1" = "127.0.0.1:8081" }"#,
        r#"[cluster]
        node_id = 1
        secret = "s"
        nodes = { "1" = "127.0.0.1:8081" }
        settings_sync = "10ms""#,
        r#"auth_token = "same"
        [cluster]
        node_id = 1
        secret = "same"
        nodes = { "1" = "127.0.0.1:8081" }"#,
    ] {
        let s = Settings::from_toml(bad).unwrap();
        assert!(s.validate().unwrap_err().message().contains("cluster"), "{bad}");
    }
}

#[test]
fn the_kafka_fetch_cap_is_parsed_and_checked() {
    assert_eq!(Settings::default().kafka_fetch_max_bytes, ByteSize::mib(55));
    let s = Settings::from_toml("kafka_fetch_max_bytes = \"4MiB\"").unwrap();
    s.validate().unwrap();
    assert_eq!(s.kafka_fetch_max_bytes, ByteSize::mib(4));
    for bad in ["100B", "3GiB"] {
        let s = Settings::from_toml(&format!("kafka_fetch_max_bytes = \"{bad}\"")).unwrap();
        let e = s.validate().unwrap_err();
        assert!(e.message().contains("kafka_fetch_max_bytes"), "{bad}: {}", e.message());
    }
}

#[test]
fn consumer_group_timings_parse_and_are_bounded() {
    let s =
        Settings::from_toml("[groups]\nconsumer_session_timeout = \"6s\"\nconsumer_heartbeat_interval = \"500ms\"\n")
            .unwrap();
    assert_eq!(s.groups.consumer_session_timeout, Duration::from_secs(6));
    assert_eq!(s.groups.consumer_heartbeat_interval, Duration::from_millis(500));
    s.validate().unwrap();
    let d = Settings::default();
    assert_eq!(d.groups.consumer_session_timeout, Duration::from_secs(45));
    assert_eq!(d.groups.consumer_heartbeat_interval, Duration::from_secs(5));
    for (session, heartbeat) in [(6_000, 6_000), (6_000, 50), (31 * 60_000, 5_000)] {
        let mut s = Settings::default();
        s.groups.consumer_session_timeout = Duration::from_millis(session);
        s.groups.consumer_heartbeat_interval = Duration::from_millis(heartbeat);
        let e = s.validate().unwrap_err().message().to_string();
        assert!(e.contains("groups.consumer_"), "{session} {heartbeat}: {e}");
    }
}
