//! `[tls]`: HTTPS and Kafka over TLS with real clients, and HTTPS between
//! the nodes of a cluster.
//!
//! - one node: a reqwest client trusting the node's certificate produces and
//!   reads; plain HTTP to the same port gets no answer; kcat (librdkafka)
//!   produces and consumes over `security.protocol=ssl`, verifying the
//!   certificate and its address; the `sluice` CLI works with `--ca`; a
//!   missing key file stops the node at start, naming the file;
//! - three nodes sharing one self-signed certificate: a replicated stream
//!   is created, written with `acks=all` and read back from a follower,
//!   all peer traffic over HTTPS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_support::kcat;
use crate::replication_support::{cluster_ports, node_config};
use crate::support::{Server, ServerOptions, expect_json};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as
/// `cert.pem` and `key.pem` into `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

fn tls_section(cert: &Path, key: &Path) -> String {
    format!(
        "\n[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// An HTTPS client trusting `ca`, showing `identity` (cert and key in one
/// PEM file) when given.
pub(crate) fn https(ca: &Path, identity: Option<&Path>) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    let mut b = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("PEM"))
        .timeout(Duration::from_secs(30));
    if let Some(id) = identity {
        let pem = std::fs::read(id).expect("read identity");
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("PEM identity"));
    }
    b.build().expect("client")
}

/// Creates stream `name` over `c` and produces one record with `key` and
/// `value` to its partition 0, which lands at offset 0.
pub(crate) async fn create_and_produce(c: &reqwest::Client, server: &Server, name: &str, key: &str, value: &str) {
    let resp = c
        .post(server.url("/streams"))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("POST /streams");
    expect_json(resp, StatusCode::CREATED).await;
    let resp = c
        .post(server.url(&format!("/streams/{name}/partitions/0/records")))
        .json(&json!([{"key": key, "value": value}]))
        .send()
        .await
        .expect("produce");
    assert_eq!(
        expect_json(resp, StatusCode::OK).await,
        json!({"base_offset": 0, "count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_serves_https_and_kafka_over_tls_to_real_clients() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed(certs.path());
    let server = Server::start_with(ServerOptions {
        config: Some(tls_section(&cert, &key)),
        tls_ca: Some(cert.clone()),
        ..ServerOptions::default()
    })
    .await;
    assert!(
        server.log_tail(50).contains("listening on https://"),
        "{}",
        server.log_tail(50)
    );
    let c = https(&cert, None);
    create_and_produce(&c, &server, "t", "k", "over https").await;

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = server.url("/health").replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(&plain)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");

    // kcat over TLS, verifying the certificate (and that it names 127.0.0.1).
    let ssl = ["-X", "security.protocol=ssl", "-X"];
    let ca = format!("ssl.ca.location={}", cert.display());
    let bootstrap = server.kafka();
    let mut produce = vec!["-b", bootstrap.as_str(), "-t", "t", "-p", "0", "-P", "-K", ":"];
    produce.extend(ssl);
    produce.push(&ca);
    kcat(&produce, b"k2:over kafka tls\n");
    let mut consume = vec![
        "-b",
        bootstrap.as_str(),
        "-t",
        "t",
        "-p",
        "0",
        "-C",
        "-o",
        "beginning",
        "-e",
        "-f",
        "%k=%s\\n",
    ];
    consume.extend(ssl);
    consume.push(&ca);
    let read = kcat(&consume, b"");
    assert_eq!(read, "k=over https\nk2=over kafka tls\n");

    // The CLI with --ca.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["stream", "list", "--output", "json", "--server", &server.base(), "--ca"])
        .arg(&cert)
        .output()
        .expect("run sluice");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(listed.to_string().contains("\"t\""), "{listed}");
    // Without the CA, the self-signed certificate is refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["stream", "list", "--server", &server.base()])
        .env_remove("SLUICE_CA")
        .output()
        .expect("run sluice");
    assert!(!out.status.success(), "an untrusted certificate was accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_stops_the_node_at_start_naming_the_file() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (cert, _) = self_signed(certs.path());
    let missing = certs.path().join("nope.pem");
    let data = tempfile::tempdir().expect("temp dir");
    let config = data.path().join("config.toml");
    std::fs::write(&config, tls_section(&cert, &missing)).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "off",
            "--data-dir",
        ])
        .arg(data.path().join("d"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without its key: {stderr}");
    assert!(stderr.contains("nope.pem"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_replicates_over_https() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed(certs.path());
    let (ports, kafka) = cluster_ports();
    let options = |id: u32| ServerOptions {
        config: Some(node_config(id, &ports, &kafka, "1MiB") + &tls_section(&cert, &key)),
        port: Some(ports[id as usize - 1]),
        kafka_port: Some(kafka[id as usize - 1]),
        tls_ca: Some(cert.clone()),
        ..ServerOptions::default()
    };
    let (n1, n2, n3) = tokio::join!(
        Server::start_with(options(1)),
        Server::start_with(options(2)),
        Server::start_with(options(3)),
    );
    replicate_and_read_back(&https(&cert, None), [&n1, &n2, &n3], "replicated over https").await;
}

/// Creates a stream replicated on the three nodes (node 1 leading), writes
/// `value` with `acks=all` and waits until both followers serve it: every
/// peer call on the way crosses HTTPS.
pub(crate) async fn replicate_and_read_back(c: &reqwest::Client, nodes: [&Server; 3], value: &str) {
    let [n1, n2, n3] = nodes;
    let resp = c
        .post(n1.url("/streams"))
        .json(&json!({"name": "r", "partitions": 1, "replication_factor": 3, "assignment": [[1, 2, 3]]}))
        .send()
        .await
        .expect("POST /streams");
    expect_json(resp, StatusCode::CREATED).await;
    let resp = c
        .post(n1.url("/streams/r/partitions/0/records?acks=all"))
        .json(&json!([{"value": value}]))
        .send()
        .await
        .expect("produce");
    assert_eq!(expect_json(resp, StatusCode::OK).await["count"], 1);
    // Both followers hold it (acks=all waited for them); a follower serves
    // it once the next fetch over HTTPS brings the high watermark.
    for node in [n2, n3] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let resp = c
                .get(node.url("/streams/r/partitions/0/records?offset=0"))
                .send()
                .await
                .expect("read");
            let body = expect_json(resp, StatusCode::OK).await;
            if body["records"][0]["value"] == value {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "follower never served it: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
