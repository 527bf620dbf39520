//! Certificates rotate without a restart: a node whose `[tls]` files are
//! replaced (its certificate, the CA peers chain to, the clients' CA) takes
//! them for new connections within `reload_interval`, on both listeners;
//! clients of the old CAs are then refused. Files that do not load leave
//! the last good ones in use, and the failure is counted. Three nodes
//! rotated to a new CA keep replicating: calls to peers take the new files
//! too.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::kafka_support::sum_in;
use crate::replication_support::{cluster_ports, node_config};
use crate::support::{Server, ServerOptions, expect_json};
use crate::tls::{https, replicate_and_read_back};
use crate::tls_clients::{Ca, cert_settings, kcat_tls, tls_section};

/// Replaces `to` with `from` as rotation tools do (a new file renamed over
/// the old one).
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).expect("copy");
    std::fs::rename(&tmp, to).expect("rename");
}

/// Waits until `GET /streams` over a fresh connection of `client` answers
/// 200 (`true`) or fails; panics if the wanted outcome takes over 30 s.
async fn until_answered(server: &Server, client: impl Fn() -> reqwest::Client, want: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = client()
            .get(server.url("/streams"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if answered == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still answered = {answered}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (old_ca, new_ca) = (Ca::new(d, "old"), Ca::new(d, "new"));
    let (old_node, old_key, _) = old_ca.issue(d, "old-node", &["localhost", "127.0.0.1"]);
    let (_, _, old_app) = old_ca.issue(d, "old-app", &["app"]);
    // The new node certificate expires on 2040-01-01, 00:00 UTC.
    let (new_node, new_key, _) = new_ca.issue_until(d, "new-node", &["localhost", "127.0.0.1"], Some(2040));
    let (new_app_cert, new_app_key, new_app) = new_ca.issue(d, "new-app", &["app"]);
    // The paths the node reads; they hold the old CA's material first.
    let live = d.join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let (cert, key, trust) = (live.join("node.pem"), live.join("node.key"), live.join("ca.pem"));
    replace(&old_node, &cert);
    replace(&old_key, &key);
    replace(&old_ca.pem, &trust);
    let config = tls_section(&cert, &key, &trust, &trust, "required") + "reload_interval = \"200ms\"\n";
    let server = Server::start_with(ServerOptions {
        config: Some(config),
        tls_ca: Some(old_ca.pem.clone()),
        tls_client: Some(old_app.clone()),
        ..ServerOptions::default()
    })
    .await;
    let old = || https(&old_ca.pem, Some(&old_app));
    let resp = old()
        .post(server.url("/streams"))
        .json(&json!({"name": "rot"}))
        .send()
        .await
        .expect("create");
    expect_json(resp, StatusCode::CREATED).await;

    // Rotate everything to the new CA, key first, as a tool might.
    replace(&new_key, &key);
    replace(&new_node, &cert);
    replace(&new_ca.pem, &trust);
    let new = || https(&new_ca.pem, Some(&new_app));
    until_answered(&server, new, true, "the new CA's client").await;
    // Old clients are refused now: the node's certificate is the new CA's,
    // and so is the CA client certificates must chain to.
    until_answered(&server, old, false, "the old CA's client").await;
    let mixed = || https(&new_ca.pem, Some(&old_app));
    until_answered(&server, mixed, false, "an old client certificate").await;
    // Kafka takes the new files too.
    let bootstrap = server.kafka();
    let produce = ["-b", bootstrap.as_str(), "-t", "rot", "-p", "0", "-P"];
    kcat_tls(
        &produce,
        &new_ca.pem,
        &cert_settings(&new_app_cert, &new_app_key),
        b"after the rotation\n",
    )
    .expect("kcat with the new certificates");
    let metrics = || async {
        let text = new()
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        (
            sum_in(&text, "sluice_tls_reloads_total", "result=\"ok\""),
            sum_in(&text, "sluice_tls_reloads_total", "result=\"error\""),
            sum_in(&text, "sluice_tls_certificate_expiry_seconds", "file=\"cert\""),
        )
    };
    let (ok, errors, expiry) = metrics().await;
    assert!(ok >= 1.0, "no reload counted: ok {ok}, errors {errors}");
    assert_eq!(
        expiry, 2_208_988_800.0,
        "the node certificate's expiry after the rotation"
    );

    // A broken certificate file is not taken: the new one stays in use.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("break");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics().await.1 <= errors {
        assert!(Instant::now() < deadline, "the broken file was never tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_answered(&server, new, true, "the new CA's client after a broken file").await;
    let log = server.log_tail(200);
    assert!(log.contains("do not load"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_rotates_to_a_new_ca_and_keeps_replicating() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (old_ca, new_ca) = (Ca::new(d, "old"), Ca::new(d, "new"));
    let (old_node, old_key, old_id) = old_ca.issue(d, "old-node", &["localhost", "127.0.0.1"]);
    let (new_node, new_key, _) = new_ca.issue(d, "new-node", &["localhost", "127.0.0.1"]);
    let (_, _, new_app) = new_ca.issue(d, "new-app", &["app"]);
    let (ports, kafka) = cluster_ports();
    // Each node reads its own copies of the files.
    let files: Vec<_> = (1..=3)
        .map(|i| {
            let live = d.join(format!("live{i}"));
            std::fs::create_dir(&live).expect("mkdir");
            let paths = (live.join("node.pem"), live.join("node.key"), live.join("ca.pem"));
            replace(&old_node, &paths.0);
            replace(&old_key, &paths.1);
            replace(&old_ca.pem, &paths.2);
            paths
        })
        .collect();
    let options = |i: usize| {
        let (cert, key, trust) = &files[i];
        let id = u32::try_from(i + 1).expect("id");
        ServerOptions {
            config: Some(
                node_config(id, &ports, &kafka, "1MiB")
                    + &tls_section(cert, key, trust, trust, "required")
                    + "reload_interval = \"200ms\"\n",
            ),
            port: Some(ports[i]),
            kafka_port: Some(kafka[i]),
            tls_ca: Some(old_ca.pem.clone()),
            tls_client: Some(old_id.clone()),
            ..ServerOptions::default()
        }
    };
    let (n1, n2, n3) = tokio::join!(
        Server::start_with(options(0)),
        Server::start_with(options(1)),
        Server::start_with(options(2)),
    );
    for (cert, key, trust) in &files {
        replace(&new_key, key);
        replace(&new_node, cert);
        replace(&new_ca.pem, trust);
    }
    for node in [&n1, &n2, &n3] {
        until_answered(node, || https(&new_ca.pem, Some(&new_app)), true, "the new CA's client").await;
    }
    // Peers now call each other with the new certificates only.
    replicate_and_read_back(
        &https(&new_ca.pem, Some(&new_app)),
        [&n1, &n2, &n3],
        "after the rotation",
    )
    .await;
}
