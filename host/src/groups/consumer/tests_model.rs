//! Random runs of consumer-protocol clients against the coordinator
//! (proptest): members join, heartbeat, acknowledge late or never, send
//! wrong epochs, leave, go silent, and topics grow. Each client behaves as
//! librdkafka does: it starts consuming newly assigned partitions at once,
//! but gives up lost ones only when its revocation is done (it may
//! heartbeat meanwhile, reporting nothing new), then reports what it owns.
//!
//! Checked after every step: no two live members own a partition at the
//! same time, client-side. Checked at the end: once every member keeps
//! heartbeating, the group settles with every subscribed partition owned by
//! exactly one member, at its target, all at the group's epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use uuid::Uuid;

use super::super::tests::limits;
use super::super::{Coordinator, Limits};
use super::*;

struct Topics1(Mutex<u32>);

const TOPIC: Uuid = Uuid::from_u128(7);

impl Topics for Topics1 {
    fn topic(&self, name: &str) -> Option<TopicMeta> {
        (name == "t").then(|| TopicMeta {
            id: TOPIC,
            partitions: *self.0.lock().unwrap(),
        })
    }
    fn names(&self) -> Vec<String> {
        vec!["t".into()]
    }
}

/// A client's view of itself.
#[derive(Default, Clone)]
struct Client {
    epoch: i32,
    /// What it consumes now.
    owned: BTreeSet<i32>,
    /// The last assignment answered, while partitions it lost are still
    /// being revoked.
    revoking: Option<BTreeSet<i32>>,
    /// Owned set changed since the last heartbeat (report it).
    dirty: bool,
    joined: bool,
}

#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    /// A heartbeat; with `true` any revocation under way finishes first.
    Beat(usize, bool),
    /// A heartbeat with the epoch off by this much.
    WrongEpoch(usize, i32),
    Leave(usize),
    /// Time passes (seconds); every member heartbeats halfway but this one.
    Silence(u64, usize),
    Grow,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..4usize).prop_map(Step::Join),
        8 => (0..4usize, any::<bool>()).prop_map(|(m, done)| Step::Beat(m, done)),
        1 => (0..4usize, prop_oneof![Just(-1), Just(1), Just(5)]).prop_map(|(m, d)| Step::WrongEpoch(m, d)),
        1 => (0..4usize).prop_map(Step::Leave),
        1 => (1..12u64, 0..4usize).prop_map(|(s, m)| Step::Silence(s, m)),
        1 => Just(Step::Grow),
    ]
}

/// Finishes the revocation under way, if any.
fn revoke(client: &mut Client) {
    if let Some(new) = client.revoking.take() {
        client.owned = new;
        client.dirty = true;
    }
}

fn heartbeat(c: &Coordinator, topics: &Topics1, id: usize, client: &mut Client, epoch: i32) {
    let mut req = ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: format!("m{id}"),
        member_epoch: epoch,
        owned: client
            .dirty
            .then(|| vec![(TOPIC, client.owned.iter().copied().collect())]),
        ..ConsumerHeartbeat::default()
    };
    if epoch == 0 {
        req.subscribed_names = Some(vec!["t".into()]);
        req.rebalance_timeout = Some(Duration::from_secs(30));
        req.owned = Some(Vec::new());
    }
    match c.consumer_heartbeat(req, topics) {
        Ok(a) => {
            client.joined = true;
            client.epoch = a.member_epoch;
            client.dirty = false;
            if let Some(parts) = a.assignment {
                let new: BTreeSet<i32> = parts.into_iter().flat_map(|(_, p)| p).collect();
                // New partitions are consumed at once; lost ones until revoked.
                client.owned.extend(new.iter().copied());
                if client.owned != new {
                    client.revoking = Some(new);
                } else {
                    client.revoking = None;
                    client.dirty = true;
                }
            }
        }
        // Fenced or forgotten: it gives up everything and joins again later.
        Err(_) if epoch != client.epoch || !client.joined => {}
        Err(_) => *client = Client::default(),
    }
}

/// Partitions owned by two live members (client-side).
fn doubly_owned(c: &Coordinator, clients: &[Client]) -> Vec<i32> {
    let live: BTreeSet<String> = c
        .describe_consumer("g")
        .map(|d| d.members.into_iter().map(|m| m.member_id).collect())
        .unwrap_or_default();
    let mut seen: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, cl) in clients.iter().enumerate() {
        if live.contains(&format!("m{i}")) {
            for p in &cl.owned {
                *seen.entry(*p).or_default() += 1;
            }
        }
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(p, _)| p).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn no_partition_is_owned_twice_and_the_group_settles(steps in proptest::collection::vec(step(), 1..60)) {
        let c = Coordinator::new(Limits {
            consumer_session: Duration::from_secs(10),
            ..limits()
        });
        let topics = Topics1(Mutex::new(5));
        let mut clients = vec![Client::default(); 4];
        for s in &steps {
            match s.clone() {
                Step::Join(m) => {
                    clients[m] = Client::default();
                    heartbeat(&c, &topics, m, &mut clients[m], 0);
                }
                Step::Beat(m, done) if clients[m].joined => {
                    if done {
                        revoke(&mut clients[m]);
                    }
                    let e = clients[m].epoch;
                    heartbeat(&c, &topics, m, &mut clients[m], e);
                }
                Step::WrongEpoch(m, d) if clients[m].joined => {
                    let e = clients[m].epoch.saturating_add(d).max(1);
                    let mut copy = clients[m].clone();
                    heartbeat(&c, &topics, m, &mut copy, e);
                    // A refused heartbeat changes nothing client-side; an
                    // accepted one (the previous epoch) is a real answer.
                    if copy.joined && copy.epoch != 0 {
                        clients[m] = copy;
                    }
                }
                Step::Leave(m) if clients[m].joined => {
                    let _ = c.consumer_heartbeat(
                        ConsumerHeartbeat { group_id: "g".into(), member_id: format!("m{m}"), member_epoch: -1, ..Default::default() },
                        &topics,
                    );
                    clients[m] = Client::default();
                }
                Step::Silence(secs, quiet) => {
                    c.advance(Duration::from_secs(secs / 2));
                    for m in (0..clients.len()).filter(|m| *m != quiet) {
                        if clients[m].joined {
                            revoke(&mut clients[m]);
                            let e = clients[m].epoch;
                            heartbeat(&c, &topics, m, &mut clients[m], e);
                        }
                    }
                    c.advance(Duration::from_secs(secs - secs / 2));
                }
                Step::Grow => *topics.0.lock().unwrap() += 2,
                _ => {}
            }
            let twice = doubly_owned(&c, &clients);
            prop_assert!(twice.is_empty(), "owned twice: {:?} after {:?}", twice, s);
        }
        // Everyone still in the group keeps heartbeating: the group settles.
        let Some(d) = c.describe_consumer("g") else { return Ok(()) };
        let members: Vec<usize> = d.members.iter().map(|m| m.member_id[1..].parse().unwrap()).collect();
        for _ in 0..8 {
            for &m in &members {
                revoke(&mut clients[m]);
                let e = clients[m].epoch;
                heartbeat(&c, &topics, m, &mut clients[m], e);
                prop_assert!(doubly_owned(&c, &clients).is_empty());
            }
        }
        let d = c.describe_consumer("g").unwrap();
        if d.members.is_empty() {
            return Ok(());
        }
        prop_assert_eq!(d.state, ConsumerGroupState::Stable, "{:?}", d);
        let n = *topics.0.lock().unwrap() as i32;
        let mut all: Vec<i32> = members.iter().flat_map(|m| clients[*m].owned.iter().copied()).collect();
        all.sort();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        for m in &d.members {
            prop_assert_eq!(&m.assignment, &m.target);
            prop_assert_eq!(m.member_epoch, d.epoch);
        }
    }
}
