//! A consumer group through network faults, with confluent-kafka members
//! reaching the node through a proxy: answers held back and then lost
//! (JoinGroup, SyncGroup, Heartbeat, OffsetCommit, Fetch alike) and every
//! connection cut, again and again, while records arrive, the members
//! consume, a member joins and another is killed. The group must come back
//! to one stable generation whose two members hold every partition, every
//! record must be consumed, and committed offsets must never move back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault_proxy::FaultProxy;
use crate::kafka_groups::{Member, PARTITIONS, PER_PARTITION, commit_history, consumed, produce_all};
use crate::support::{self, Rng, Server, ServerOptions};

const CUTS: u32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rides_out_lost_answers_and_cut_connections() {
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("seed {seed} (replay with SLUICE_E2E_SEED={seed})");
    let proxy = FaultProxy::bind().await;
    let config = format!(
        "kafka_advertised = \"{}\"\n[groups]\ninitial_rebalance_delay = \"500ms\"\n",
        proxy.addr()
    );
    let server = Server::start_with(ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    proxy.set_target(server.kafka());
    let topic = "orders";
    support::create_stream(&support::client(), &server, topic, PARTITIONS).await;
    produce_all(&server, topic, "a").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let member = |i: u32| {
        Member::start_with(
            "confluent",
            json!({
                "bootstrap": proxy.addr(), "group": "g", "topic": topic,
                "out": dir.path().join(format!("m{i}.jsonl")), "idle_exit": 15,
                "session_timeout_ms": 6000, "tolerate_commit_errors": true,
            }),
        )
    };
    let mut members: Vec<Member> = (0..2).map(member).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while members.iter().any(|m| consumed(&m.events()).is_empty()) {
        assert!(Instant::now() < deadline, "both members never consumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Faults while records keep arriving and the members consume them
    // (each commits after every batch).
    let feeding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let (feeding, base) = (feeding.clone(), server.base());
        tokio::spawn(async move {
            let c = support::client();
            let mut round = 0u64;
            while feeding.load(std::sync::atomic::Ordering::SeqCst) {
                for p in 0..PARTITIONS {
                    let records: Vec<Value> = (0..5).map(|i| json!({"value": format!("f{round}-{p}-{i}")})).collect();
                    let url = format!("{base}/streams/{topic}/partitions/{p}/records");
                    let resp = c.post(url).json(&records).send().await.expect("produce");
                    assert!(resp.status().is_success(), "produce: {}", resp.status());
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            round
        })
    };
    // A member joins (a rebalance among the faults), and the first one is
    // killed (its partitions move once its session times out).
    let mut killed = Vec::new();
    for i in 0..CUTS {
        match i {
            1 => members.push(member(2)),
            3 => {
                let mut first = members.remove(0);
                first.kill();
                killed.extend(first.events());
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.range(200, 1200))).await;
        if i % 2 == 0 {
            proxy.hold();
            tokio::time::sleep(Duration::from_millis(rng.range(100, 800))).await;
        }
        proxy.cut_and_release();
    }
    feeding.store(false, std::sync::atomic::Ordering::SeqCst);
    let rounds = feeder.await.expect("feeder");
    produce_all(&server, topic, "b").await;
    let per_partition = PER_PARTITION + rounds * 5 + PER_PARTITION;

    // One stable generation again, its two members holding every partition.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let g = group(&server).await;
        let held: BTreeSet<i64> = g["members"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .flat_map(|m| m["assignment"].as_array().cloned().unwrap_or_default())
                    .flat_map(|a| a["partitions"].as_array().cloned().unwrap_or_default())
                    .filter_map(|p| p.as_i64())
                    .collect()
            })
            .unwrap_or_default();
        let members_now = g["members"].as_array().map_or(0, Vec::len);
        if g["state"] == "Stable" && members_now == 2 && held == (0..i64::from(PARTITIONS)).collect() {
            break;
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = members.iter().map(Member::stderr_tail).collect();
            panic!(
                "the group did not settle: {g}\n{}\n{}",
                tails.join("\n--\n"),
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut seen: BTreeSet<(u64, u64)> = consumed(&killed).into_iter().collect();
    let (mut rebalances, mut failed_commits) = (0, 0);
    for m in members {
        let stderr = m.stderr_tail();
        assert!(stderr.contains("Disconnected"), "a member never saw a cut: {stderr}");
        let evs = m.finish(Duration::from_secs(120));
        rebalances += evs.iter().filter(|e| e["ev"] == "assigned").count();
        failed_commits += evs.iter().filter(|e| e["ev"] == "commit_failed").count();
        seen.extend(consumed(&evs));
    }
    println!("{rounds} rounds fed during the faults; {rebalances} assignments, {failed_commits} failed commits");
    let want: BTreeSet<(u64, u64)> = (0..u64::from(PARTITIONS))
        .flat_map(|p| (0..per_partition).map(move |o| (p, o)))
        .collect();
    let missing: Vec<_> = want.difference(&seen).take(10).collect();
    assert!(missing.is_empty(), "records never consumed (first 10): {missing:?}");

    // Commits never moved back, and end at the partitions' ends.
    let history = commit_history(&server).await;
    assert_eq!(history.len(), PARTITIONS as usize, "{history:?}");
    for (key, offsets) in &history {
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{key}: {offsets:?}");
        assert_eq!(offsets.last(), Some(&per_partition), "{key}: {offsets:?}");
    }
}

async fn group(server: &Server) -> Value {
    let resp = support::client()
        .get(server.url("/groups/g"))
        .send()
        .await
        .expect("GET group");
    support::expect_json(resp, reqwest::StatusCode::OK).await
}
