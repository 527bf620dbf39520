//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 with the node's token as the
//! password, from four SCRAM implementations no one here wrote: kcat
//! (librdkafka), confluent-kafka (librdkafka again, through Python),
//! kafka-python and KafkaJS. A wrong password fails with the node's reason
//! and writes nothing; a node without a token refuses SCRAM (there is no
//! password it could prove it knows). OAUTHBEARER with the token as the
//! bearer token, from confluent-kafka, kafka-python and KafkaJS.

use serde_json::json;

use crate::kafka_support::{hex, js, kcat_outcome, kp_values, py};
use crate::support::{Server, ServerOptions};

const TOKEN: &str = "scram-e2e-token";

fn scram_args(mechanism: &str, password: &str) -> Vec<String> {
    [
        "security.protocol=SASL_PLAINTEXT".to_string(),
        format!("sasl.mechanisms={mechanism}"),
        "sasl.username=anyone".to_string(),
        format!("sasl.password={password}"),
    ]
    .into_iter()
    .flat_map(|x| ["-X".to_string(), x])
    .collect()
}

fn kcat_with(base: &[&str], extra: &[String], stdin: &[u8]) -> Result<String, String> {
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["-m", "10", "-X", "message.timeout.ms=10000"]);
    args.extend(extra.iter().map(String::as_str));
    kcat_outcome(&args, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_clients_authenticate_with_the_token_and_wrong_passwords_fail() {
    let server = Server::start_with(ServerOptions::args(&["--auth-token", TOKEN])).await;
    let b = server.kafka();
    let created = py(
        "kafkapython",
        "create_topic",
        &json!({"bootstrap": b, "topic": "sc", "partitions": 1,
                "client": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                           "sasl_plain_username": "admin", "sasl_plain_password": TOKEN}}),
    );
    assert_eq!(created["ok"], true, "{created}");

    // kcat with each mechanism.
    let produce = ["-b", b.as_str(), "-t", "sc", "-p", "0", "-P"];
    for (mechanism, line) in [("SCRAM-SHA-256", "kcat 256\n"), ("SCRAM-SHA-512", "kcat 512\n")] {
        kcat_with(&produce, &scram_args(mechanism, TOKEN), line.as_bytes())
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
    }
    // A wrong password: refused with the node's reason, nothing written.
    let err = kcat_with(&produce, &scram_args("SCRAM-SHA-256", "wrong"), b"must not land\n").expect_err("wrong");
    assert!(err.contains("wrong password"), "{err}");

    // confluent-kafka (SHA-512), kafka-python (SHA-256), KafkaJS (SHA-256).
    let sent = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "sc",
                "config": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                           "sasl.username": "u", "sasl.password": TOKEN},
                "records": [{"value": hex(b"confluent 512"), "partition": 0}]}),
    );
    assert_eq!(sent["results"][0]["offset"], 2, "{sent}");
    let kp = json!({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                    "sasl_plain_username": "u", "sasl_plain_password": TOKEN});
    let sent = py(
        "kafkapython",
        "produce",
        &json!({"bootstrap": b, "topic": "sc", "config": kp,
                "records": [{"value": hex(b"kafka-python 256"), "partition": 0}]}),
    );
    assert_eq!(sent["results"][0]["offset"], 3, "{sent}");
    let sent = js(
        "produce",
        &json!({"bootstrap": b, "topic": "sc",
                "sasl": {"mechanism": "scram-sha-256", "username": "u", "password": TOKEN},
                "records": [{"value": hex(b"kafkajs 256"), "partition": 0}]}),
    );
    assert_eq!(sent["results"][0]["offset"], 4, "{sent}");

    // Everything, read back through SCRAM by kafka-python, once each.
    let values = kp_values(&b, "sc", 0, 5, &kp);
    let want: Vec<String> = [
        "kcat 256",
        "kcat 512",
        "confluent 512",
        "kafka-python 256",
        "kafkajs 256",
    ]
    .iter()
    .map(|v| hex(v.as_bytes()))
    .collect();
    assert_eq!(values, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_scram_is_refused_and_plain_connections_work() {
    let server = Server::start().await;
    let b = server.kafka();
    let err = kcat_with(&["-b", b.as_str(), "-L"], &scram_args("SCRAM-SHA-256", "anything"), b"").expect_err("scram");
    assert!(err.contains("no token"), "{err}");
    let listed = kcat_with(&["-b", b.as_str(), "-L"], &[], b"").expect("plain");
    assert!(listed.contains("1 brokers"), "{listed}");
}

/// OAUTHBEARER with the token as the bearer token, as the clients' token
/// callbacks give it: confluent-kafka (`oauth_cb`), kafka-python (a token
/// provider) and KafkaJS (`oauthBearerProvider`) write; a wrong token is
/// refused with the node's reason and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_clients_authenticate_with_the_token_as_bearer_token() {
    let server = Server::start_with(ServerOptions::args(&["--auth-token", TOKEN])).await;
    let b = server.kafka();
    let c = crate::support::client();
    let resp = c
        .post(server.url("/streams"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "ob", "partitions": 1}))
        .send()
        .await
        .expect("create");
    assert!(resp.status().is_success(), "{}", resp.status());
    let oauth = json!({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER"});
    let record = |v: &str| json!([{"value": hex(v.as_bytes()), "partition": 0}]);

    let sent = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "ob", "config": oauth, "oauth_token": TOKEN,
                "records": record("confluent oauth")}),
    );
    assert_eq!(sent["results"][0]["offset"], 0, "{sent}");
    let kp = json!({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"});
    let sent = py(
        "kafkapython",
        "produce",
        &json!({"bootstrap": b, "topic": "ob", "config": kp, "oauth_token": TOKEN,
                "records": record("kafka-python oauth")}),
    );
    assert_eq!(sent["results"][0]["offset"], 1, "{sent}");
    let sent = js(
        "produce",
        &json!({"bootstrap": b, "topic": "ob", "sasl": {"mechanism": "oauthbearer", "token": TOKEN},
                "records": record("kafkajs oauth")}),
    );
    assert_eq!(sent["results"][0]["offset"], 2, "{sent}");

    // A wrong bearer token: refused, with the node's reason.
    let mut short = oauth.clone();
    short["message.timeout.ms"] = json!(5000);
    let refused = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "ob", "config": short, "oauth_token": "wrong",
                "records": record("must not land")}),
    );
    let err = refused["results"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(!err.is_empty(), "{refused}");
    let stream = c
        .get(server.url("/streams/ob"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    let (status, body) = crate::support::json_of(stream).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["partitions"][0]["end_offset"], 3, "nothing landed: {body}");
    let kp_scram = json!({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                          "sasl_plain_username": "u", "sasl_plain_password": TOKEN});
    let values = kp_values(&b, "ob", 0, 3, &kp_scram);
    let want: Vec<String> = ["confluent oauth", "kafka-python oauth", "kafkajs oauth"]
        .iter()
        .map(|v| hex(v.as_bytes()))
        .collect();
    assert_eq!(values, want);
}
