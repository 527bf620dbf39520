//! A stateless node (`wal = "object"` on moto, behind the fault proxy)
//! through a short network partition from its object store: appends made
//! while the store is unreachable are not acknowledged until their object
//! is stored; once the link is back (old connections resume, as after a
//! partition shorter than TCP's retransmission timeout, and well within
//! `remote_timeout`), every one of them is, in order. After a SIGKILL and
//! an empty data dir, every acknowledged record is there.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_test_artifacts::moto;

use crate::fault_proxy::FaultProxy;
use crate::support::{self, Server, ServerOptions};

fn batch(i: usize) -> Vec<String> {
    (0..5).map(|j| format!("{i:05}-{j}")).collect()
}

async fn append(base: String, values: Vec<String>) -> Result<Vec<u64>, String> {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    let resp = support::client()
        .post(format!("{base}/streams/t/partitions/0/records"))
        .json(&records)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status} {body}"));
    }
    support::check_ack(&body, values.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_out_a_short_partition_from_the_store_and_are_kept() {
    let test = "appends_wait_out_a_short_partition_from_the_store_and_are_kept";
    let Some(s3) = moto::server_or_skip(test) else {
        return;
    };
    let bucket = s3.unique_bucket("e2e-owal-partition");
    let (proxy, envs) = FaultProxy::in_front_of_s3(s3).await;
    let config = format!(
        "wal = \"object\"\nwal_object_interval = \"20ms\"\nobject_store = \"s3://{bucket}/node\"\n\
         remote_timeout = \"10s\"\n"
    );
    let mut server = Server::start_with(ServerOptions {
        envs,
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    support::create_stream(&support::client(), &server, "t", 1).await;
    let mut acked: Vec<String> = Vec::new();
    for i in 0..20 {
        let values = batch(i);
        let offsets = append(server.base(), values.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(offsets[0], acked.len() as u64);
        acked.extend(values);
    }

    // Partitioned: appends wait, none is acknowledged while the store
    // cannot have their object.
    proxy.partition();
    let waiting: Vec<_> = (20..30)
        .map(|i| {
            let values = batch(i);
            (values.clone(), tokio::spawn(append(server.base(), values)))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (_, task) in &waiting {
        assert!(
            !task.is_finished(),
            "an append was answered while the store was unreachable"
        );
    }
    proxy.heal();
    let mut answered: Vec<(u64, Vec<String>)> = Vec::new();
    for (values, task) in waiting {
        let offsets = task
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("after the heal: {e}"));
        answered.push((offsets[0], values));
    }
    // Concurrent appends land in some order, each batch whole.
    answered.sort();
    for (offset, values) in answered {
        assert_eq!(offset, acked.len() as u64, "batches overlap or leave a gap");
        acked.extend(values);
    }

    // SIGKILL and an empty data dir: all of it comes back from the store.
    server.kill();
    let data = server.data_dir().to_path_buf();
    std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
    server.restart().await;
    let url = format!("{}?offset=0&max_records=1000", support::records_url(&server, "t", 0));
    let page = support::expect_json(
        support::client().get(url).send().await.expect("read"),
        reqwest::StatusCode::OK,
    )
    .await;
    let got: Vec<&str> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["value"].as_str().expect("text"))
        .collect();
    assert_eq!(got, acked, "records after the restart");
}
