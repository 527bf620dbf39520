//! Consumer-protocol flows through the coordinator as clients drive them:
//! joins, revocation before reassignment, fencing, lost answers, expiry
//! on a moved clock, static members, regular expressions, topic changes,
//! bad requests, and the line between classic and consumer groups.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use super::super::tests::{Within, limits, req as classic_join};
use super::super::{Coordinator, GroupError, Limits};
use super::*;

/// Topics the test changes as it goes.
struct Fake(Mutex<BTreeMap<String, TopicMeta>>);

impl Fake {
    fn new(topics: &[(&str, u32)]) -> Fake {
        let map = topics
            .iter()
            .enumerate()
            .map(|(i, (n, p))| {
                let id = Uuid::from_u128(i as u128 + 1);
                (n.to_string(), TopicMeta { id, partitions: *p })
            })
            .collect();
        Fake(Mutex::new(map))
    }

    fn id(&self, name: &str) -> Uuid {
        self.0.lock().unwrap()[name].id
    }

    fn set_partitions(&self, name: &str, partitions: u32) {
        self.0.lock().unwrap().get_mut(name).unwrap().partitions = partitions;
    }
}

impl Topics for Fake {
    fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.0.lock().unwrap().get(name).copied()
    }
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

fn coordinator() -> std::sync::Arc<Coordinator> {
    Coordinator::new(Limits {
        consumer_session: Duration::from_secs(10),
        consumer_heartbeat: Duration::from_millis(500),
        ..limits()
    })
}

fn join(member: &str, topics: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout: Some(Duration::from_secs(30)),
        subscribed_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Vec::new()),
        client_id: format!("client-{member}"),
        client_host: "/127.0.0.1".into(),
        ..ConsumerHeartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<WirePartitions>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        owned,
        ..ConsumerHeartbeat::default()
    }
}

/// The partitions of an answer's assignment (of every topic), sorted.
fn parts(a: &ConsumerHeartbeatAnswer) -> Vec<i32> {
    let mut out: Vec<i32> = a.assignment.iter().flatten().flat_map(|(_, p)| p.clone()).collect();
    out.sort();
    out
}

fn owned(topic: Uuid, partitions: &[i32]) -> Option<WirePartitions> {
    Some(vec![(topic, partitions.to_vec())])
}

#[test]
fn a_partition_moves_only_after_its_owner_gives_it_up() {
    let c = coordinator();
    let t = Fake::new(&[("t", 4)]);
    let id = t.id("t");
    let a = c.consumer_heartbeat(join("a", &["t"]), &t).unwrap();
    assert_eq!((a.member_epoch, parts(&a)), (1, vec![0, 1, 2, 3]));
    assert_eq!(a.heartbeat_interval, Duration::from_millis(500));

    // b joins: its target is half, but a still holds it.
    let b = c.consumer_heartbeat(join("b", &["t"]), &t).unwrap();
    assert_eq!((b.member_epoch, parts(&b)), (2, vec![]));
    let a = c.consumer_heartbeat(beat("a", 1, None), &t).unwrap();
    assert_eq!(a.member_epoch, 1, "a keeps its epoch until it revokes");
    let kept = parts(&a);
    assert_eq!(kept.len(), 2);
    let desc = c.describe_consumer("g").unwrap();
    assert_eq!(desc.state, ConsumerGroupState::Reconciling);
    let b = c.consumer_heartbeat(beat("b", 2, None), &t).unwrap();
    assert!(b.assignment.is_none(), "nothing released yet: {b:?}");

    // a acknowledges the revocation: it moves on, and b gets the rest.
    let a = c.consumer_heartbeat(beat("a", 1, owned(id, &kept)), &t).unwrap();
    assert_eq!(a.member_epoch, 2);
    let b = c.consumer_heartbeat(beat("b", 2, None), &t).unwrap();
    let got = parts(&b);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| !kept.contains(p)), "{kept:?} {got:?}");
    // A report of what it owns is answered with the assignment again;
    // a heartbeat without one and no change, with none.
    let b = c.consumer_heartbeat(beat("b", 2, owned(id, &got)), &t).unwrap();
    assert_eq!(parts(&b), got);
    let b = c.consumer_heartbeat(beat("b", 2, None), &t).unwrap();
    assert!(b.assignment.is_none(), "no change, nothing sent");
    let desc = c.describe_consumer("g").unwrap();
    assert_eq!(
        (desc.state, desc.epoch, desc.assignor.as_str()),
        (ConsumerGroupState::Stable, 2, "uniform")
    );
    assert_eq!(desc.members.len(), 2);
}

#[test]
fn epochs_fence_and_a_lost_answer_is_forgiven() {
    let c = coordinator();
    let t = Fake::new(&[("t", 2)]);
    let id = t.id("t");
    c.consumer_heartbeat(join("a", &["t"]), &t).unwrap();
    let err = |r| c.consumer_heartbeat(r, &t).unwrap_err();
    assert_eq!(err(beat("a", 7, None)), GroupError::FencedMemberEpoch);
    assert_eq!(err(beat("zz", 1, None)), GroupError::UnknownMemberId);
    // A second member bumps the group; a's answer at epoch 2 is "lost".
    c.consumer_heartbeat(join("b", &["t"]), &t).unwrap();
    let a = c.consumer_heartbeat(beat("a", 1, None), &t).unwrap();
    let kept = parts(&a);
    let a = c.consumer_heartbeat(beat("a", 1, owned(id, &kept)), &t).unwrap();
    assert_eq!(a.member_epoch, 2);
    // a retries with its previous epoch, owning what it was assigned: fine.
    let again = c.consumer_heartbeat(beat("a", 1, owned(id, &kept)), &t).unwrap();
    assert_eq!(again.member_epoch, 2);
    // Claiming a partition it was not given at that epoch is fenced.
    assert_eq!(err(beat("a", 1, owned(id, &[0, 1]))), GroupError::FencedMemberEpoch);
    // Offset commits and fetches name the current epoch.
    assert_eq!(
        c.check_commit("g", 1, "a", None, true),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        c.check_commit("g", 3, "a", None, true),
        Err(GroupError::FencedMemberEpoch)
    );
    assert_eq!(c.check_commit("g", 2, "a", None, true), Ok(()));
    assert_eq!(
        c.check_commit("g", 2, "a", None, false),
        Err(GroupError::UnsupportedVersion)
    );
    assert_eq!(
        c.check_commit("g", -1, "", None, true),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.check_offset_fetch("g", Some("a"), 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(c.check_offset_fetch("g", Some("a"), 2), Ok(()));
    assert_eq!(c.check_offset_fetch("g", None, -1), Ok(()));
    // A member that starts over (epoch 0) owns nothing and is served anew.
    let a = c.consumer_heartbeat(join("a", &["t"]), &t).unwrap();
    assert!(a.member_epoch >= 2, "{a:?}");
}

#[test]
fn silent_members_and_slow_revokers_leave() {
    let c = coordinator();
    let t = Fake::new(&[("t", 4)]);
    let id = t.id("t");
    c.consumer_heartbeat(join("a", &["t"]), &t).unwrap();
    c.consumer_heartbeat(join("b", &["t"]), &t).unwrap();
    let a = c.consumer_heartbeat(beat("a", 1, None), &t).unwrap();
    c.consumer_heartbeat(beat("a", 1, owned(id, &parts(&a))), &t).unwrap();
    let b = c.consumer_heartbeat(beat("b", 2, None), &t).unwrap();
    assert_eq!(parts(&b).len(), 2);

    // b stops heartbeating; a keeps going, and gets b's half after b's session.
    c.advance(Duration::from_secs(6));
    c.consumer_heartbeat(beat("a", 2, None), &t).unwrap();
    c.advance(Duration::from_secs(6));
    let a = c.consumer_heartbeat(beat("a", 2, None), &t).unwrap();
    assert_eq!((a.member_epoch, parts(&a)), (3, vec![0, 1, 2, 3]));
    assert_eq!(c.describe_consumer("g").unwrap().members.len(), 1);

    // A member told to revoke that never does is removed after its
    // rebalance timeout, and its partitions move on.
    c.consumer_heartbeat(join("s", &["t"]), &t).unwrap();
    let mut slow = beat("a", 3, owned(id, &[0, 1, 2, 3]));
    slow.rebalance_timeout = Some(Duration::from_secs(2));
    let a = c.consumer_heartbeat(slow, &t).unwrap();
    assert_eq!(parts(&a).len(), 2, "a must give two up");
    let s = c.consumer_heartbeat(beat("s", 4, None), &t).unwrap();
    assert!(s.assignment.is_none(), "a has not released any: {s:?}");
    c.advance(Duration::from_secs(3));
    let s = c.consumer_heartbeat(beat("s", 4, None), &t).unwrap();
    assert_eq!(parts(&s), vec![0, 1, 2, 3], "s gets them all once a is gone: {s:?}");
    assert!(
        c.describe_consumer("g")
            .unwrap()
            .members
            .iter()
            .all(|m| m.member_id == "s")
    );
}

#[test]
fn members_leave_and_static_members_come_back_without_a_rebalance() {
    let c = coordinator();
    let t = Fake::new(&[("t", 2)]);
    let mut first = join("a", &["t"]);
    first.instance_id = Some("i1".into());
    c.consumer_heartbeat(first, &t).unwrap();
    c.consumer_heartbeat(join("b", &["t"]), &t).unwrap();
    let epoch = c.describe_consumer("g").unwrap().epoch;
    let mut taken = join("x", &["t"]);
    taken.instance_id = Some("i1".into());
    assert_eq!(
        c.consumer_heartbeat(taken.clone(), &t).unwrap_err(),
        GroupError::UnreleasedInstanceId
    );

    // A member that left for now and heartbeats again holds its instance.
    c.consumer_heartbeat(beat("a", -2, None), &t).unwrap();
    let a_epoch = c
        .describe_consumer("g")
        .unwrap()
        .members
        .iter()
        .find(|m| m.member_id == "a")
        .unwrap()
        .member_epoch;
    c.consumer_heartbeat(beat("a", a_epoch, None), &t).unwrap();
    assert_eq!(
        c.consumer_heartbeat(taken.clone(), &t).unwrap_err(),
        GroupError::UnreleasedInstanceId
    );

    // Leaving for now keeps the place; the instance comes back as a new member id.
    let left = c.consumer_heartbeat(beat("a", -2, None), &t).unwrap();
    assert_eq!(left.member_epoch, -2);
    let back = c.consumer_heartbeat(taken, &t).unwrap();
    let desc = c.describe_consumer("g").unwrap();
    assert_eq!(desc.epoch, epoch, "no rebalance");
    assert!(
        desc.members
            .iter()
            .any(|m| m.member_id == "x" && m.instance_id.as_deref() == Some("i1"))
    );
    assert!(desc.members.iter().all(|m| m.member_id != "a"));
    assert!(back.assignment.is_some());

    // Leaving for good rebalances.
    let gone = c.consumer_heartbeat(beat("b", -1, None), &t).unwrap();
    assert_eq!(gone.member_epoch, -1);
    assert_eq!(c.describe_consumer("g").unwrap().epoch, epoch + 1);
    assert_eq!(
        c.consumer_heartbeat(beat("b", -1, None), &t).unwrap_err(),
        GroupError::UnknownMemberId
    );
}

#[test]
fn regular_expressions_and_new_partitions_change_the_target() {
    let c = coordinator();
    let t = Fake::new(&[("orders-eu", 1), ("orders-us", 1), ("users", 3)]);
    let mut r = join("a", &[]);
    r.subscribed_names = None;
    r.subscribed_regex = Some("orders-.*".into());
    let a = c.consumer_heartbeat(r, &t).unwrap();
    let topics: Vec<Uuid> = a.assignment.iter().flatten().map(|(id, _)| *id).collect();
    assert_eq!(topics.len(), 2, "{a:?}");
    assert!(!topics.contains(&t.id("users")));

    t.set_partitions("orders-eu", 3);
    let a = c.consumer_heartbeat(beat("a", 1, None), &t).unwrap();
    assert_eq!((a.member_epoch, parts(&a)), (2, vec![0, 0, 1, 2]));
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let c = coordinator();
    let t = Fake::new(&[("t", 2)]);
    let err = |r| c.consumer_heartbeat(r, &t).unwrap_err();
    let mut r = join("a", &["t"]);
    r.subscribed_names = None;
    assert!(matches!(err(r), GroupError::InvalidRequest(_)));
    let mut r = join("a", &["t"]);
    r.rebalance_timeout = None;
    assert!(matches!(err(r), GroupError::InvalidRequest(_)));
    let mut r = join("a", &["t"]);
    r.server_assignor = Some("sticky-ish".into());
    assert_eq!(err(r), GroupError::UnsupportedAssignor);
    let mut r = join("a", &[]);
    r.subscribed_regex = Some("(unclosed".into());
    assert!(matches!(err(r), GroupError::InvalidRegularExpression(_)));
    let mut r = join("a", &["t"]);
    r.group_id = String::new();
    assert_eq!(err(r), GroupError::InvalidGroupId);
    let mut r = join("a", &["t"]);
    r.client_id = "c".repeat(300);
    assert_eq!(err(r), GroupError::TooLarge);
    assert!(matches!(err(beat("a", -5, None)), GroupError::InvalidRequest(_)));
    assert!(
        c.describe_consumer("g").is_none(),
        "a refused first join leaves no group"
    );
    assert!(c.list().is_empty());

    // A v0 join without a member id gets one made.
    let a = c.consumer_heartbeat(join("", &["t"]), &t).unwrap();
    assert!(a.member_id.starts_with("client--"), "{}", a.member_id);

    // The range assignor is offered too.
    let mut r = join("r", &["t"]);
    r.group_id = "ranged".into();
    r.server_assignor = Some("range".into());
    c.consumer_heartbeat(r, &t).unwrap();
    assert_eq!(c.describe_consumer("ranged").unwrap().assignor, "range");
}

#[tokio::test]
async fn classic_and_consumer_groups_do_not_mix() {
    let c = coordinator();
    let t = Fake::new(&[("t", 2)]);
    c.consumer_heartbeat(join("a", &["t"]), &t).unwrap();
    let refused = c.join(classic_join("g", "k")).within().await;
    assert_eq!(refused.unwrap_err(), GroupError::InconsistentGroupProtocol);
    let listed = c.list();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].group_type, listed[0].state.as_str()), ("consumer", "Stable"));
    assert_eq!(c.delete("g"), Err(GroupError::NonEmptyGroup));

    // A classic group with members refuses consumer heartbeats.
    let joined = c.join(classic_join("k", "k")).within().await.unwrap();
    let mut r = join("b", &["t"]);
    r.group_id = "k".into();
    assert_eq!(c.consumer_heartbeat(r, &t).unwrap_err(), GroupError::GroupIdNotFound);
    assert!(joined.generation_id > 0);

    // Empty, a consumer group can be deleted, or turn classic.
    c.consumer_heartbeat(beat("a", -1, None), &t).unwrap();
    assert_eq!(c.list().iter().find(|l| l.group_id == "g").unwrap().state, "Empty");
    assert_eq!(
        c.check_commit("g", -1, "", None, false),
        Ok(()),
        "simple commits to an empty group"
    );
    c.join(classic_join("g", "k")).within().await.unwrap();
    assert!(c.describe_consumer("g").is_none());
    c.stop();
    assert_eq!(
        c.consumer_heartbeat(join("a", &["t"]), &t).unwrap_err(),
        GroupError::CoordinatorNotAvailable
    );
}
