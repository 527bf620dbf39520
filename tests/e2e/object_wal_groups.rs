//! Consumer groups and views on a stateless node (`wal = "object"` on
//! moto): a confluent-kafka group commits, the node is SIGKILLed and its
//! whole data dir deleted, and after a restart from the object store alone
//! the committed offsets (OffsetFetch), the view and the plugin it reads
//! through are all there; a new member starts exactly after the last commit.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_test_artifacts::moto;

use crate::kafka_groups::{Member, consumed};
use crate::support::{self, Server, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_views_survive_sigkill_and_an_empty_data_dir() {
    let test = "offsets_and_views_survive_sigkill_and_an_empty_data_dir";
    let Some(s3) = moto::server_or_skip(test) else {
        return;
    };
    let bucket = s3.unique_bucket("e2e-owal-groups");
    let config = format!(
        "wal = \"object\"\nwal_object_interval = \"20ms\"\nobject_store = \"s3://{bucket}/node\"\n\
         [groups]\ninitial_rebalance_delay = \"0s\"\n"
    );
    let mut server = Server::start_with(ServerOptions {
        envs: s3.env_vars(),
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    let wasm = sluice_test_artifacts::read(sluice_test_artifacts::JSON_FILTER);
    let put = c.put(server.url("/plugins/jf")).body(wasm).send().await.expect("put");
    assert!(put.status().is_success(), "{:?}", put.text().await);
    support::create_stream(&c, &server, "t", 1).await;
    let view = json!({"name": "evens", "input": "t", "plugin": "jf",
                      "config": {"field": "/even", "value": "true"}});
    let resp = c.post(server.url("/views")).json(&view).send().await.expect("post");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let records = |from: u64, n: u64| {
        let v: Vec<serde_json::Value> = (from..from + n)
            .map(|i| json!({"value": format!(r#"{{"n":{i},"even":{}}}"#, i % 2 == 0)}))
            .collect();
        json!(v)
    };
    support::produce(&c, &server, "t", 0, &records(0, 100)).await;

    let b = server.kafka();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut member = Member::start("confluent", &b, "g", "t", &dir.path().join("m1.jsonl"), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !member.events().iter().any(|e| e["ev"] == "committed" && e["o"] == 100) {
        assert!(
            Instant::now() < deadline,
            "no commit of 100: {:?}",
            member.events().last()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    member.kill();

    server.kill();
    let data = server.data_dir().to_path_buf();
    std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
    server.restart().await;

    let got = crate::kafka_support::py(
        "confluent",
        "committed",
        &json!({"bootstrap": b, "group": "g", "topic": "t", "partitions": [0]}),
    );
    assert_eq!(got["offsets"], json!({"0": 100}), "{got}");
    let url = format!(
        "{}?offset=0&max_records=1000",
        support::records_url(&server, "evens", 0)
    );
    let page = support::expect_json(c.get(url).send().await.expect("get"), reqwest::StatusCode::OK).await;
    let offsets: Vec<u64> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(
        offsets,
        (0..100).step_by(2).collect::<Vec<u64>>(),
        "the view reads through its plugin"
    );

    support::produce(&c, &server, "t", 0, &records(100, 20)).await;
    let next = Member::start("confluent", &b, "g", "t", &dir.path().join("m2.jsonl"), 0);
    let want: BTreeSet<(u64, u64)> = (100..120).map(|o| (0, o)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<(u64, u64)> = consumed(&next.events()).into_iter().collect();
        if want.is_subset(&got) {
            assert!(
                got.iter().all(|(_, o)| *o >= 100),
                "records before the commit came again: {got:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", next.events().last());
        std::thread::sleep(Duration::from_millis(100));
    }
}
