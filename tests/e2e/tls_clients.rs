//! Client certificates (`[tls] client_ca`, mutual TLS) with real clients.
//!
//! - `client_auth = "required"` on a node with a token: a certificate from
//!   the clients' CA is all kcat, confluent-kafka, kafka-python, an HTTPS
//!   client and the `sluice` CLI need (no SASL, no bearer token); a client
//!   without one, or with one from another CA, fails its handshake on both
//!   listeners;
//! - `client_auth = "requested"`: a client without a certificate still gets
//!   in, and then needs the token (HTTP 401, Kafka connection closed before
//!   SASL), while probes answer;
//! - three nodes requiring certificates replicate over HTTPS: each shows
//!   its own certificate to the peers it calls;
//! - three nodes at three addresses, each with a certificate naming only
//!   its own: a caller holding the cluster secret and node 3's certificate
//!   cannot fetch in node 2's name, nor can a client certificate from the
//!   same CA; each node in its own name can.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;

use crate::kafka_support::{hex, kcat_outcome, kp_values, py};
use crate::replication_support::{SECRET, cluster_ports, node_config, node_config_at, peer_proof};
use crate::support::{Server, ServerOptions, expect_json};
use crate::tls::{create_and_produce, https, replicate_and_read_back};

const TOKEN: &str = "mtls-test-token";

/// A CA that signs certificates into `dir`.
pub(crate) struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, PEM.
    pub(crate) pem: PathBuf,
}

impl Ca {
    pub(crate) fn new(dir: &Path, name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).expect("write CA");
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for `names` signed by this CA: (cert, key, both in one
    /// file) under `dir`.
    pub(crate) fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
        self.issue_until(dir, stem, names, None)
    }

    /// [`Ca::issue`], valid until 1 January of `year` (rcgen's default
    /// without).
    pub(crate) fn issue_until(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        year: Option<i32>,
    ) -> (PathBuf, PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        if let Some(year) = year {
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        params.distinguished_name.push(rcgen::DnType::CommonName, stem);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let (c, k, both) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
            dir.join(format!("{stem}.both.pem")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        std::fs::write(&both, format!("{}\n{}", cert.pem(), key.serialize_pem())).expect("write identity");
        (c, k, both)
    }
}

pub(crate) fn tls_section(cert: &Path, key: &Path, ca: &Path, client_ca: &Path, auth: &str) -> String {
    format!(
        "\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\nclient_ca = {:?}\nclient_auth = {auth:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string(),
        client_ca.display().to_string(),
    )
}

/// kcat over TLS with `extra` settings; `Err` with its stderr when it fails.
pub(crate) fn kcat_tls(args: &[&str], ca: &Path, extra: &[String], stdin: &[u8]) -> Result<String, String> {
    let ca = format!("ssl.ca.location={}", ca.display());
    let mut all: Vec<&str> = args.to_vec();
    // Fail fast instead of retrying a refused handshake for minutes.
    all.extend([
        "-X",
        "security.protocol=ssl",
        "-X",
        &ca,
        "-m",
        "10",
        "-X",
        "message.timeout.ms=10000",
    ]);
    for x in extra {
        all.extend(["-X", x.as_str()]);
    }
    kcat_outcome(&all, stdin)
}

pub(crate) fn cert_settings(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        format!("ssl.certificate.location={}", cert.display()),
        format!("ssl.key.location={}", key.display()),
    ]
}

/// A node with a token and `[tls]`: its certificate from a servers' CA,
/// client certificates from a clients' CA, `client_auth = auth`.
struct OneNode {
    server: Server,
    servers: Ca,
    /// A client certificate from the clients' CA: cert, key, both.
    app: (PathBuf, PathBuf, PathBuf),
}

async fn one_node(d: &Path, auth: &str) -> OneNode {
    let servers = Ca::new(d, "servers");
    let clients = Ca::new(d, "clients");
    let (node_cert, node_key, _) = servers.issue(d, "node", &["localhost", "127.0.0.1"]);
    let app = clients.issue(d, "app", &["app"]);
    let server = Server::start_with(ServerOptions {
        config: Some(tls_section(&node_cert, &node_key, &servers.pem, &clients.pem, auth)),
        args: vec!["--auth-token".into(), TOKEN.into()],
        tls_ca: Some(servers.pem.clone()),
        tls_client: Some(app.2.clone()),
        ..ServerOptions::default()
    })
    .await;
    OneNode { server, servers, app }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_all_kafka_http_and_cli_clients_need() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let OneNode {
        server,
        servers,
        app: (app_cert, app_key, app),
    } = one_node(d, "required").await;
    let rogue = Ca::new(d, "rogue");
    let (rogue_cert, rogue_key, rogue_id) = rogue.issue(d, "intruder", &["app"]);
    let log = server.log_tail(50);
    assert!(log.contains("listening on https://"), "{log}");
    assert!(log.contains("(client certificates required)"), "{log}");

    // HTTPS with the certificate and no token.
    let c = https(&servers.pem, Some(&app));
    create_and_produce(&c, &server, "m", "h", "over https").await;
    // Without a certificate, or with one from another CA, not even the
    // token gets an answer: the handshake fails.
    for (who, client) in [
        ("no certificate", https(&servers.pem, None)),
        ("another CA's certificate", https(&servers.pem, Some(&rogue_id))),
    ] {
        let answer = client.get(server.url("/streams")).bearer_auth(TOKEN).send().await;
        assert!(answer.is_err(), "{who}: answered {answer:?}");
        let probe = client.get(server.url("/health")).send().await;
        assert!(probe.is_err(), "{who}: the probe was answered {probe:?}");
    }

    // kcat with the certificate and no SASL produces and reads back.
    let bootstrap = server.kafka();
    let produce = ["-b", bootstrap.as_str(), "-t", "m", "-p", "0", "-P", "-K", ":"];
    kcat_tls(
        &produce,
        &servers.pem,
        &cert_settings(&app_cert, &app_key),
        b"k:over kafka\n",
    )
    .expect("kcat produce");
    // Without one, or with another CA's, it fails and writes nothing.
    for (who, extra) in [
        ("no certificate", Vec::new()),
        ("another CA's certificate", cert_settings(&rogue_cert, &rogue_key)),
    ] {
        let err = kcat_tls(&produce, &servers.pem, &extra, b"k:must not land\n").expect_err(who);
        assert!(!err.is_empty(), "{who}: kcat failed without saying why");
    }

    // confluent-kafka and kafka-python, each with the certificate only.
    let confluent = json!({
        "security.protocol": "ssl",
        "ssl.ca.location": servers.pem,
        "ssl.certificate.location": app_cert,
        "ssl.key.location": app_key,
    });
    let kp = json!({
        "security_protocol": "SSL",
        "ssl_cafile": servers.pem,
        "ssl_certfile": app_cert,
        "ssl_keyfile": app_key,
    });
    for (lib, config, value, offset) in [
        ("confluent", &confluent, "from librdkafka", 2),
        ("kafkapython", &kp, "from kafka-python", 3),
    ] {
        let records = json!([{"value": hex(value.as_bytes()), "partition": 0}]);
        let sent = py(
            lib,
            "produce",
            &json!({"bootstrap": bootstrap, "topic": "m", "config": config, "records": records}),
        );
        assert_eq!(sent["results"][0]["offset"], offset, "{lib}: {sent}");
    }
    let values = kp_values(&bootstrap, "m", 0, 4, &kp);
    assert_eq!(
        values,
        [
            hex(b"over https"),
            hex(b"over kafka"),
            hex(b"from librdkafka"),
            hex(b"from kafka-python")
        ]
    );

    // The CLI with --client-cert and --client-key, no token.
    let cli = |extra: &[&Path]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["stream", "list", "--output", "json", "--server", &server.base(), "--ca"])
            .arg(&servers.pem)
            .env_remove("SLUICE_AUTH_TOKEN")
            .env_remove("SLUICE_CLIENT_CERT")
            .env_remove("SLUICE_CLIENT_KEY");
        if let [cert, key] = extra {
            cmd.arg("--client-cert").arg(cert).arg("--client-key").arg(key);
        }
        cmd.output().expect("run sluice")
    };
    let out = cli(&[&app_cert, &app_key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"m\""));
    let out = cli(&[]);
    assert!(!out.status.success(), "listed without a certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_certificates_leave_clients_without_one_to_the_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let OneNode {
        server,
        servers,
        app: (app_cert, app_key, app),
    } = one_node(d, "requested").await;
    let bare = https(&servers.pem, None);
    let resp = bare.get(server.url("/health")).send().await.expect("probe");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = bare.get(server.url("/streams")).send().await.expect("GET");
    expect_json(resp, StatusCode::UNAUTHORIZED).await;
    let resp = bare
        .post(server.url("/streams"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "q"}))
        .send()
        .await
        .expect("POST");
    expect_json(resp, StatusCode::CREATED).await;
    let resp = https(&servers.pem, Some(&app))
        .get(server.url("/streams/q"))
        .send()
        .await
        .expect("GET");
    expect_json(resp, StatusCode::OK).await;

    let bootstrap = server.kafka();
    let produce = ["-b", bootstrap.as_str(), "-t", "q", "-p", "0", "-P"];
    // No certificate and no SASL: refused before anything is written.
    kcat_tls(&produce, &servers.pem, &[], b"refused\n").expect_err("produced unauthenticated");
    // No certificate, SASL PLAIN with the token over TLS.
    let sasl = vec![
        "security.protocol=sasl_ssl".to_string(),
        "sasl.mechanisms=PLAIN".to_string(),
        "sasl.username=any".to_string(),
        format!("sasl.password={TOKEN}"),
    ];
    kcat_tls(&produce, &servers.pem, &sasl, b"with the token\n").expect("kcat with SASL");
    // A certificate and no SASL.
    kcat_tls(
        &produce,
        &servers.pem,
        &cert_settings(&app_cert, &app_key),
        b"with a certificate\n",
    )
    .expect("kcat with a certificate");
    let read = kcat_tls(
        &[
            "-b",
            bootstrap.as_str(),
            "-t",
            "q",
            "-p",
            "0",
            "-C",
            "-o",
            "beginning",
            "-e",
        ],
        &servers.pem,
        &cert_settings(&app_cert, &app_key),
        b"",
    )
    .expect("kcat consume");
    assert_eq!(read, "with the token\nwith a certificate\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_requiring_certificates_show_theirs_to_each_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "cluster");
    // One CA signs the nodes' certificate and the clients'.
    let (node_cert, node_key, node_id) = ca.issue(d, "node", &["localhost", "127.0.0.1"]);
    let (_, _, app) = ca.issue(d, "app", &["app"]);
    let (ports, kafka) = cluster_ports();
    let options = |id: u32| ServerOptions {
        config: Some(
            node_config(id, &ports, &kafka, "1MiB") + &tls_section(&node_cert, &node_key, &ca.pem, &ca.pem, "required"),
        ),
        port: Some(ports[id as usize - 1]),
        kafka_port: Some(kafka[id as usize - 1]),
        tls_ca: Some(ca.pem.clone()),
        tls_client: Some(node_id.clone()),
        ..ServerOptions::default()
    };
    let (n1, n2, n3) = tokio::join!(
        Server::start_with(options(1)),
        Server::start_with(options(2)),
        Server::start_with(options(3)),
    );
    replicate_and_read_back(&https(&ca.pem, Some(&app)), [&n1, &n2, &n3], "over mutual tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_acts_only_in_the_name_its_certificate_gives() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "cluster");
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    // Each node's certificate names its own address only.
    let ids: Vec<_> = (0..3)
        .map(|i| ca.issue(d, &format!("node{}", i + 1), &[hosts[i]]))
        .collect();
    let (_, _, app) = ca.issue(d, "app", &["app"]);
    let (ports, kafka) = cluster_ports();
    let options = |i: usize| {
        let (cert, key, both) = &ids[i];
        let id = u32::try_from(i + 1).expect("id");
        ServerOptions {
            config: Some(
                node_config_at(id, hosts, &ports, &kafka, "1MiB")
                    + &tls_section(cert, key, &ca.pem, &ca.pem, "required"),
            ),
            port: Some(ports[i]),
            kafka_port: Some(kafka[i]),
            tls_ca: Some(ca.pem.clone()),
            tls_client: Some(both.clone()),
            ip: Some(hosts[i].to_string()),
            ..ServerOptions::default()
        }
    };
    let (n1, n2, n3) = tokio::join!(
        Server::start_with(options(0)),
        Server::start_with(options(1)),
        Server::start_with(options(2)),
    );
    // Every node's calls to its peers pass, each in its own name.
    replicate_and_read_back(&https(&ca.pem, Some(&app)), [&n1, &n2, &n3], "in its own name").await;

    let described = https(&ca.pem, Some(&app))
        .get(n1.url("/streams/r"))
        .send()
        .await
        .expect("describe");
    let created_ms = expect_json(described, StatusCode::OK).await["created_ms"].clone();
    let fetch = |replica: u32| {
        json!({"stream": "r", "created_ms": created_ms, "partition": 0, "replica": replica,
               "fetch_offset": 0, "leader_epoch": 0, "last_epoch": null, "max_bytes": 1024, "wait_ms": 0})
    };
    // (identity shown, node the proof names, expected status)
    let cases = [
        (&ids[2].2, 2, StatusCode::UNAUTHORIZED),
        (&app, 2, StatusCode::UNAUTHORIZED),
        (&ids[2].2, 3, StatusCode::OK),
        (&ids[1].2, 2, StatusCode::OK),
    ];
    for (identity, node, expected) in cases {
        let resp = https(&ca.pem, Some(identity))
            .post(n1.url("/internal/replication/fetch"))
            .header("authorization", peer_proof(SECRET, node))
            .json(&fetch(node))
            .send()
            .await
            .expect("fetch");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, expected, "{} as node {node}: {body}", identity.display());
        if expected == StatusCode::UNAUTHORIZED {
            assert!(body.contains("does not name the address"), "{body}");
        }
    }
}
