//! Consumer groups: how long a rebalance of 10 members takes in the
//! coordinator, and durable offset commits per second against the node's
//! own one-record appends measured in the same run (a commit is one durable
//! append to `__consumer_offsets`, so appends are its physical limit here).
//!
//! Run with `cargo bench -p sluice-host --bench groups`
//! (`SLUICE_BENCH_QUICK=1` for a smoke run).
//!
//! Rebalance: 10 members join a new group at once (initial rebalance delay
//! 20 ms, included), the leader assigns, everyone syncs: time from the first join to the
//! last sync answer. Then one member leaves and the other nine rejoin and
//! sync: time from the leave to the last sync answer. Repeated, medians
//! reported. Clients add their own heartbeat and poll intervals on top:
//! measured last with ten confluent-kafka consumers per protocol (classic
//! eager, classic cooperative, and the consumer group protocol).

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_host::groups::{JoinRequest, SyncRequest};
use sluice_host::{Host, OffsetCommit, Record, Settings};

const MEMBERS: usize = 10;

fn join_req(group: &str, member: &str, i: usize) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: format!("bench-{i}"),
        client_host: "127.0.0.1".into(),
        session_timeout: Duration::from_secs(30),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: false,
    }
}

/// All members (re)join and sync; returns their member ids.
async fn round(host: &Host, group: &str, members: &[String]) -> anyhow::Result<Vec<String>> {
    let joins = members
        .iter()
        .enumerate()
        .map(|(i, m)| host.join_group(join_req(group, m, i)));
    let joined = futures::future::try_join_all(joins).await?;
    let generation = joined[0].generation_id;
    let leader = joined[0].leader.clone();
    let ids: Vec<String> = joined.iter().map(|j| j.member_id.clone()).collect();
    let syncs = ids.iter().map(|m| {
        let assignments = if *m == leader {
            ids.iter()
                .map(|id| (id.clone(), Bytes::from_static(b"assignment")))
                .collect()
        } else {
            Vec::new()
        };
        host.sync_group(SyncRequest {
            group_id: group.into(),
            generation_id: generation,
            member_id: m.clone(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments,
        })
    });
    futures::future::try_join_all(syncs).await?;
    Ok(ids)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (rounds, ops) = if quick { (5, 200) } else { (30, 3000) };
    let root = tempfile::Builder::new()
        .prefix("sluice-bench-groups-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let mut settings = Settings {
        data_dir: root.path().join("data"),
        ..Settings::default()
    };
    // A new group waits this long for its members (Kafka's default is 3 s);
    // it is part of the first rebalance's time.
    settings.groups.initial_rebalance_delay = Duration::from_millis(20);
    // Consumer-protocol members heartbeat as often as the classic ones do.
    settings.groups.consumer_heartbeat_interval = Duration::from_millis(500);
    let host = Host::open(settings).await?;

    let (mut first, mut again) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let group = format!("g{r}");
        let started = Instant::now();
        let ids = round(&host, &group, &vec![String::new(); MEMBERS]).await?;
        first.push(started.elapsed());
        let started = Instant::now();
        let leaving = ids[MEMBERS - 1].clone();
        host.leave_group(&group, &[(leaving, None)])?;
        round(&host, &group, &ids[..MEMBERS - 1]).await?;
        again.push(started.elapsed());
    }
    println!(
        "rebalance of {MEMBERS} members (join + sync, in the coordinator): first {:.3} ms, after a leave {:.3} ms (medians of {rounds})",
        median(&mut first).as_secs_f64() * 1e3,
        median(&mut again).as_secs_f64() * 1e3
    );

    host.create_stream("t", 16).await?;
    host.append("t", 0, &[Record::default()]).await?;
    // The physical limit here: one-record durable appends, one at a time.
    let started = Instant::now();
    for _ in 0..ops {
        host.append(
            "t",
            1,
            &[Record {
                value: Some(Bytes::from_static(&[b'x'; 64])),
                ..Record::default()
            }],
        )
        .await?;
    }
    let appends = ops as f64 / started.elapsed().as_secs_f64();
    let commit = |p: u32, o: u64| OffsetCommit {
        stream: "t".into(),
        partition: p,
        offset: o,
        leader_epoch: -1,
        metadata: None,
    };
    let started = Instant::now();
    for i in 0..ops {
        let r = host.commit_offsets("one", &[commit(0, i as u64)]).await?;
        anyhow::ensure!(r.iter().all(Result::is_ok), "commit refused: {r:?}");
    }
    let commits = ops as f64 / started.elapsed().as_secs_f64();
    // Sixteen groups committing at once (as sixteen consumers would).
    let started = Instant::now();
    let tasks = (0..16u32).map(|g| {
        let host = host.clone();
        tokio::spawn(async move {
            for i in 0..ops / 16 {
                host.commit_offsets(&format!("c{g}"), &[commit(g, i as u64)]).await?;
            }
            anyhow::Ok(())
        })
    });
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    let concurrent = (ops / 16 * 16) as f64 / started.elapsed().as_secs_f64();
    println!("| path | per second | vs one-record appends |");
    println!("|---|---:|---:|");
    println!("| one-record durable appends, one at a time | {appends:.0} | 100% |");
    println!(
        "| offset commits, one group, one at a time | {commits:.0} | {:.0}% |",
        commits / appends * 100.0
    );
    println!(
        "| offset commits, 16 groups at once | {concurrent:.0} | {:.0}% |",
        concurrent / appends * 100.0
    );
    match sluice_test_artifacts::kafka_clients::try_python() {
        Ok(python) => real_clients(&host, python).await?,
        Err(e) => println!("real-client rebalance skipped: {e}"),
    }
    host.shutdown().await;
    Ok(())
}

fn wall() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A member's partitions now and when they last changed, replayed from its
/// `assigned` and `revoked` events (eager rebalances revoke and assign
/// everything; incremental ones only what moves).
fn current_assignment(out: &std::path::Path) -> (f64, std::collections::BTreeSet<u64>) {
    let mut held = std::collections::BTreeSet::new();
    let mut at = 0.0;
    let text = std::fs::read_to_string(out).unwrap_or_default();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let parts = e["partitions"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64));
        match (e["ev"].as_str(), parts) {
            (Some("assigned"), Some(p)) => held.extend(p),
            (Some("revoked"), Some(p)) => p.for_each(|x| {
                held.remove(&x);
            }),
            _ => continue,
        }
        at = e["t"].as_f64().unwrap_or(at);
    }
    (at, held)
}

/// Waits until the members in `outs` each hold at least one partition, none
/// twice, all of `partitions` among them, with a change after `since`;
/// returns the last change's time.
async fn settled(outs: &[std::path::PathBuf], since: f64, partitions: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now: Vec<(f64, std::collections::BTreeSet<u64>)> = outs.iter().map(|o| current_assignment(o)).collect();
        let mut covered: Vec<u64> = now.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        covered.sort_unstable();
        let last = now.iter().map(|(t, _)| *t).fold(0.0, f64::max);
        if last > since && now.iter().all(|(_, p)| !p.is_empty()) && covered == (0..partitions).collect::<Vec<_>>() {
            return Ok(last);
        }
        anyhow::ensure!(Instant::now() < deadline, "the group did not settle: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ten confluent-kafka (librdkafka) consumers over the Kafka listener, for
/// each way a group can rebalance: the classic protocol with the eager
/// `range` assignor (revoke everything, rejoin, sync) and with
/// `cooperative-sticky` (only what moves), and the consumer group protocol
/// (the node assigns; members learn at their next heartbeat). Each pays
/// heartbeats every 500 ms. How long until they share ten partitions, and
/// how long after one leaves cleanly until the other nine share them again.
async fn real_clients(host: &Host, python: &std::path::Path) -> anyhow::Result<()> {
    let kafka = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bootstrap = kafka.local_addr()?.to_string();
    tokio::spawn(sluice_host::kafka::serve(host.clone(), kafka));
    println!("\nreal clients: {MEMBERS} confluent-kafka consumers, {MEMBERS} partitions, heartbeats every 500 ms");
    println!(
        "| protocol | group formed (process start-up included) | one member leaves: the rest share all again | vs the heartbeat interval |"
    );
    println!("|---|---:|---:|---:|");
    let ways = [
        ("classic, range (eager)", serde_json::json!({"assignor": "range"})),
        (
            "classic, cooperative-sticky",
            serde_json::json!({"assignor": "cooperative-sticky"}),
        ),
        (
            "consumer (server-side uniform)",
            serde_json::json!({"protocol": "consumer"}),
        ),
    ];
    for (i, (name, extra)) in ways.iter().enumerate() {
        let topic = format!("rb{i}");
        host.create_stream(&topic, MEMBERS as u32).await?;
        let (formed, again) = rebalance(python, &bootstrap, &topic, extra).await?;
        println!("| {name} | {formed:.2} s | {again:.2} s | {:.2}× |", again / 0.5);
    }
    Ok(())
}

async fn rebalance(
    python: &std::path::Path,
    bootstrap: &str,
    topic: &str,
    extra: &serde_json::Value,
) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/kafka/group_consumer.py");
    let outs: Vec<std::path::PathBuf> = (0..MEMBERS).map(|i| dir.path().join(format!("m{i}.jsonl"))).collect();
    let started = wall();
    let mut children = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        let mut args = serde_json::json!({
            "bootstrap": bootstrap, "group": topic, "topic": topic, "out": out, "idle_exit": 0,
            "session_timeout_ms": 10000, "stop_file": dir.path().join(format!("stop{i}")),
        });
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        children.push(
            std::process::Command::new(python)
                .arg(driver)
                .args(["confluent", &args.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?,
        );
    }
    let formed = settled(&outs, started, MEMBERS as u64).await;
    let left = wall();
    std::fs::write(dir.path().join(format!("stop{}", MEMBERS - 1)), b"")?;
    let again = match &formed {
        Ok(_) => settled(&outs[..MEMBERS - 1], left, MEMBERS as u64).await,
        Err(_) => Err(anyhow::anyhow!("no group formed")),
    };
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok((formed? - started, again? - left))
}
