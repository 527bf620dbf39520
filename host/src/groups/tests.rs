//! Flows through the coordinator as clients drive them: joins that wait
//! for each other, syncs, heartbeats, expiry on a moved clock, static
//! members, limits and shutdown.

use std::time::Duration;

use bytes::Bytes;

use super::*;

/// A request the test expects answered fails the test after 5 s instead
/// of hanging it.
pub(super) trait Within: Future + Sized {
    async fn within(self) -> Self::Output {
        match tokio::time::timeout(Duration::from_secs(5), self).await {
            Ok(out) => out,
            Err(_) => panic!("not answered within 5 s"),
        }
    }
}

impl<F: Future> Within for F {}

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

/// Default limits without the initial rebalance delay.
pub(super) fn limits() -> Limits {
    Limits {
        initial_rebalance_delay: Duration::ZERO,
        ..Limits::default()
    }
}

pub(super) fn meta(client: &str) -> Bytes {
    Bytes::from(format!("meta-{client}"))
}

/// A new member `client` of `group` preferring the "range" assignor.
pub(super) fn req(group: &str, client: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), meta(client))],
        ..JoinRequest::default()
    }
}

pub(super) fn with_id(mut r: JoinRequest, id: &str) -> JoinRequest {
    r.member_id = id.into();
    r
}

pub(super) fn sync_req(group: &str, generation: i32, member: &str, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
        ..SyncRequest::default()
    }
}

/// The id a new member gets with JoinGroup v4+.
pub(super) async fn new_id(c: &Coordinator, mut r: JoinRequest) -> String {
    r.require_known_member_id = true;
    match c.join(r).within().await {
        Err(GroupError::MemberIdRequired { member_id }) => member_id,
        other => panic!("expected MemberIdRequired, got {other:?}"),
    }
}

/// `clients` join `group` together and form one generation; the answers
/// in client order (the first client leads).
pub(super) async fn form(c: &Coordinator, group: &str, clients: &[&str]) -> Vec<JoinResponse> {
    let mut ids = Vec::new();
    for client in clients {
        ids.push(new_id(c, req(group, client)).within().await);
    }
    let waits: Vec<_> = clients
        .iter()
        .zip(&ids)
        .map(|(cl, id)| c.begin_join(with_id(req(group, cl), id)))
        .collect();
    let mut out = Vec::new();
    for w in waits {
        out.push(w.within().await.unwrap());
    }
    out
}

/// [`form`], then the leader assigns `to-<client>` to everyone: Stable.
pub(super) async fn stable(c: &Coordinator, group: &str, clients: &[&str]) -> Vec<JoinResponse> {
    let joined = form(c, group, clients).within().await;
    let gen_ = joined[0].generation_id;
    let assignments: Vec<(String, String)> = joined
        .iter()
        .zip(clients)
        .map(|(j, cl)| (j.member_id.clone(), format!("to-{cl}")))
        .collect();
    let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
    let leader = joined.iter().find(|j| j.member_id == j.leader).unwrap();
    c.sync(sync_req(group, gen_, &leader.member_id, &pairs))
        .within()
        .await
        .unwrap();
    assert_eq!(c.describe(group).unwrap().state, GroupState::Stable);
    joined
}

pub(super) fn heartbeat(c: &Coordinator, group: &str, j: &JoinResponse) -> Result<(), GroupError> {
    c.heartbeat(group, j.generation_id, &j.member_id, None)
}

#[tokio::test]
async fn three_members_form_generation_one_and_the_leaders_assignment_reaches_everyone() {
    let c = Coordinator::new(limits());
    let a = new_id(&c, req("g", "a")).within().await;
    let b = new_id(&c, req("g", "b")).within().await;
    assert!(a.starts_with("a-") && b.starts_with("b-") && a != b);
    let mut wc = c.begin_join(req("g", "c"));
    assert!(!wc.is_resolved(), "a and b still have to come back");
    let mut wa = c.begin_join(with_id(req("g", "a"), &a));
    assert!(!wa.is_resolved() && !wc.is_resolved());
    let wb = c.begin_join(with_id(req("g", "b"), &b));
    let (ra, rb, rc) = (
        wa.within().await.unwrap(),
        wb.within().await.unwrap(),
        wc.within().await.unwrap(),
    );

    for r in [&ra, &rb, &rc] {
        assert_eq!(
            (r.generation_id, r.protocol_type.as_str(), r.protocol_name.as_str()),
            (1, "consumer", "range")
        );
        assert_eq!(r.leader, rc.member_id, "c joined first, so it leads");
    }
    assert_eq!((ra.member_id.as_str(), rb.member_id.as_str()), (a.as_str(), b.as_str()));
    assert!(ra.members.is_empty() && rb.members.is_empty());
    let roster: Vec<(&str, Bytes)> = rc
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.metadata.clone()))
        .collect();
    assert_eq!(
        roster,
        vec![
            (rc.member_id.as_str(), meta("c")),
            (a.as_str(), meta("a")),
            (b.as_str(), meta("b"))
        ]
    );
    assert_eq!(c.describe("g").unwrap().state, GroupState::CompletingRebalance);

    // A follower's sync waits for the leader's; one the leader leaves out
    // gets an empty assignment.
    let mut sa = c.begin_sync(sync_req("g", 1, &a, &[]));
    assert!(!sa.is_resolved());
    let leader = c
        .sync(sync_req("g", 1, &rc.member_id, &[(&a, "to-a"), (&b, "to-b")]))
        .within()
        .await
        .unwrap();
    assert_eq!(leader.assignment, Bytes::new());
    assert_eq!(sa.within().await.unwrap().assignment, Bytes::from("to-a"));
    let sb = c.sync(sync_req("g", 1, &b, &[])).within().await.unwrap();
    assert_eq!(
        (sb.assignment, sb.protocol_name.as_str()),
        (Bytes::from("to-b"), "range")
    );

    let d = c.describe("g").unwrap();
    assert_eq!((d.state.as_str(), d.protocol_name.as_str()), ("Stable", "range"));
    assert_eq!(d.members[1].assignment, Bytes::from("to-a"));
    assert_eq!(d.members[1].metadata, meta("a"));
    assert_eq!(c.heartbeat("g", 1, &a, None), Ok(()));
    assert_eq!(c.heartbeat("g", 0, &a, None), Err(GroupError::IllegalGeneration));
    assert_eq!(c.heartbeat("g", 1, "ghost", None), Err(GroupError::UnknownMemberId));
    assert_eq!(c.heartbeat("nope", 1, &a, None), Err(GroupError::UnknownMemberId));
    assert_eq!(
        c.sync(sync_req("g", 0, &a, &[])).within().await,
        Err(GroupError::IllegalGeneration)
    );
}

#[tokio::test]
async fn a_fourth_member_makes_heartbeats_ask_for_a_rejoin_until_generation_two() {
    let c = Coordinator::new(limits());
    let old = stable(&c, "g", &["a", "b", "c"]).within().await;
    let d = new_id(&c, req("g", "d")).within().await;
    assert_eq!(
        heartbeat(&c, "g", &old[1]),
        Ok(()),
        "a pending member does not rebalance"
    );
    let mut wd = c.begin_join(with_id(req("g", "d"), &d));
    assert!(!wd.is_resolved());
    for j in &old {
        assert_eq!(heartbeat(&c, "g", j), Err(GroupError::RebalanceInProgress));
    }
    assert_eq!(c.describe("g").unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(
        c.sync(sync_req("g", 1, &old[1].member_id, &[])).within().await,
        Err(GroupError::RebalanceInProgress)
    );

    let mut waits: Vec<_> = ["a", "b"]
        .iter()
        .zip(&old)
        .map(|(cl, j)| c.begin_join(with_id(req("g", cl), &j.member_id)))
        .collect();
    assert!(waits.iter_mut().all(|w| !w.is_resolved()), "c has not rejoined yet");
    assert_eq!(heartbeat(&c, "g", &old[2]), Err(GroupError::RebalanceInProgress));
    waits.push(c.begin_join(with_id(req("g", "c"), &old[2].member_id)));
    waits.push(wd);
    let mut new = Vec::new();
    for w in waits {
        new.push(w.within().await.unwrap());
    }
    assert!(new.iter().all(|r| r.generation_id == 2 && r.leader == old[0].member_id));
    assert_eq!(new[0].members.len(), 4);
    assert_eq!(heartbeat(&c, "g", &old[0]), Err(GroupError::IllegalGeneration));
    assert_eq!(heartbeat(&c, "g", &new[0]), Ok(()));
}

#[tokio::test]
async fn a_silent_member_is_removed_after_its_session_and_the_rest_rebalance() {
    let c = Coordinator::new(limits());
    let old = stable(&c, "g", &["a", "b", "c"]).within().await;
    c.advance(Duration::from_secs(6));
    assert_eq!(heartbeat(&c, "g", &old[1]), Ok(()));
    assert_eq!(heartbeat(&c, "g", &old[2]), Ok(()));
    c.advance(Duration::from_secs(5)); // a, the leader, last heard of 11 s ago
    let d = c.describe("g").unwrap();
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert_eq!(d.members.len(), 2);
    assert_eq!(heartbeat(&c, "g", &old[0]), Err(GroupError::UnknownMemberId));
    assert_eq!(heartbeat(&c, "g", &old[1]), Err(GroupError::RebalanceInProgress));

    let wb = c.begin_join(with_id(req("g", "b"), &old[1].member_id));
    let rc = c
        .join(with_id(req("g", "c"), &old[2].member_id))
        .within()
        .await
        .unwrap();
    let rb = wb.within().await.unwrap();
    assert_eq!((rb.generation_id, rc.generation_id), (2, 2));
    assert_eq!(rb.leader, old[1].member_id, "the next member by join order leads");
    assert_eq!(rb.members.len(), 2);
}

#[tokio::test]
async fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let c = Coordinator::new(limits());
    let old = stable(&c, "g", &["a", "b"]).within().await;
    let mut wd = c.begin_join(req("g", "d"));
    let mut wa = c.begin_join(with_id(req("g", "a"), &old[0].member_id));
    // b stays alive by heartbeating but never rejoins.
    for _ in 0..3 {
        c.advance(Duration::from_secs(9));
        assert_eq!(heartbeat(&c, "g", &old[1]), Err(GroupError::RebalanceInProgress));
        assert!(!wa.is_resolved() && !wd.is_resolved());
    }
    c.advance(Duration::from_secs(9)); // 36 s > the 30 s rebalance timeout
    let (ra, rd) = (wa.within().await.unwrap(), wd.within().await.unwrap());
    assert_eq!((ra.generation_id, rd.generation_id), (2, 2));
    assert_eq!(ra.members.len(), 2);
    assert_eq!(heartbeat(&c, "g", &old[1]), Err(GroupError::UnknownMemberId));
}

#[tokio::test]
async fn leaving_empties_the_group_and_only_an_empty_group_can_be_deleted() {
    let c = Coordinator::new(limits());
    let old = stable(&c, "g", &["a", "b"]).within().await;
    assert_eq!(c.delete("g"), Err(GroupError::NonEmptyGroup));
    let results = c
        .leave("g", &[(old[0].member_id.clone(), None), ("ghost".into(), None)])
        .unwrap();
    assert_eq!(results, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(c.describe("g").unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(c.leave("g", &[(old[1].member_id.clone(), None)]).unwrap(), vec![Ok(())]);
    let d = c.describe("g").unwrap();
    assert_eq!(
        (d.state, d.members.len(), d.protocol_type.as_str()),
        (GroupState::Empty, 0, "consumer")
    );
    assert_eq!(c.list()[0].state.as_str(), "Empty");

    // The generation survives the group being empty.
    let e = c.join(req("g", "e")).within().await.unwrap();
    assert_eq!(e.generation_id, 2);
    assert_eq!(c.delete("g"), Err(GroupError::NonEmptyGroup));
    assert_eq!(c.leave("g", &[(e.member_id, None)]).unwrap(), vec![Ok(())]);
    assert_eq!(c.delete("g"), Ok(()));
    assert!(c.describe("g").is_none() && c.list().is_empty());
    assert_eq!(c.delete("g"), Err(GroupError::GroupIdNotFound));
    assert_eq!(
        c.leave("g", &[("x".into(), None)]).unwrap(),
        vec![Err(GroupError::UnknownMemberId)]
    );
}

#[tokio::test]
async fn simple_commits_only_for_an_empty_group_and_member_commits_need_the_current_generation() {
    let c = Coordinator::new(limits());
    assert_eq!(c.check_commit("g", -1, "", None, false), Ok(()), "unknown group");
    assert_eq!(
        c.check_commit("g", 1, "m", None, false),
        Err(GroupError::IllegalGeneration)
    );
    let joined = form(&c, "g", &["a", "b"]).within().await;
    let (a, b) = (&joined[0].member_id, &joined[1].member_id);
    assert_eq!(
        c.check_commit("g", 1, a, None, false),
        Err(GroupError::RebalanceInProgress),
        "CompletingRebalance"
    );
    assert_eq!(
        c.check_commit("g", -1, "", None, false),
        Err(GroupError::UnknownMemberId),
        "a simple commit into a group with members (Kafka's answer)"
    );
    c.sync(sync_req("g", 1, a, &[])).within().await.unwrap();
    assert_eq!(c.check_commit("g", 1, b, None, false), Ok(()));
    assert_eq!(
        c.check_commit("g", 0, b, None, false),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.check_commit("g", 1, "ghost", None, false),
        Err(GroupError::UnknownMemberId)
    );
    let _wait = c.begin_join(req("g", "d"));
    assert_eq!(
        c.check_commit("g", 1, b, None, false),
        Ok(()),
        "members commit before they rejoin"
    );
    c.leave("g", &[(a.clone(), None), (b.clone(), None)]).unwrap();
    // d alone completes the rebalance; then it leaves too.
    let d = c.describe("g").unwrap().members[0].member_id.clone();
    c.leave("g", &[(d, None)]).unwrap();
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    assert_eq!(c.check_commit("g", -1, "", None, false), Ok(()));
    assert_eq!(c.check_commit("g", 2, a, None, false), Err(GroupError::UnknownMemberId));
}

fn static_req(client: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        require_known_member_id: true,
        ..req("g", client)
    }
}

#[tokio::test]
async fn a_replaced_static_member_is_fenced() {
    let c = Coordinator::new(limits());
    // Static members skip MemberIdRequired.
    let first = c.join(static_req("s", "i-1")).within().await.unwrap();
    assert_eq!(first.generation_id, 1);
    c.sync(sync_req("g", 1, &first.member_id, &[(&first.member_id, "to-s")]))
        .within()
        .await
        .unwrap();

    let second = c.join(static_req("s", "i-1")).within().await.unwrap();
    assert_ne!(second.member_id, first.member_id);
    assert_eq!(
        (second.generation_id, second.leader.as_str()),
        (2, second.member_id.as_str())
    );
    let fenced = Err(GroupError::FencedInstanceId);
    assert_eq!(c.heartbeat("g", 1, &first.member_id, Some("i-1")), fenced);
    assert_eq!(c.heartbeat("g", 2, &second.member_id, Some("i-1")), Ok(()));
    assert_eq!(
        c.join(with_id(static_req("s", "i-1"), &first.member_id)).within().await,
        Err(GroupError::FencedInstanceId)
    );
    let mut old_sync = sync_req("g", 2, &first.member_id, &[]);
    old_sync.group_instance_id = Some("i-1".into());
    assert_eq!(c.sync(old_sync).within().await, Err(GroupError::FencedInstanceId));
    assert_eq!(
        c.check_commit("g", 2, &first.member_id, Some("i-1"), false),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        c.leave("g", &[(first.member_id.clone(), Some("i-1".into()))]).unwrap(),
        vec![fenced]
    );

    // A waiting join of the replaced member is answered FencedInstanceId.
    let x = new_id(&c, req("g", "x")).within().await;
    let mut changed = with_id(static_req("s", "i-1"), &second.member_id);
    changed.protocols.push(("roundrobin".into(), meta("s")));
    let mut waiting = c.begin_join(changed);
    assert!(!waiting.is_resolved(), "x still has to come back");
    let third = c.begin_join(static_req("s", "i-1"));
    assert_eq!(waiting.within().await, Err(GroupError::FencedInstanceId));
    let rx = c.join(with_id(req("g", "x"), &x)).within().await.unwrap();
    let third = third.within().await.unwrap();
    assert_eq!((third.generation_id, rx.generation_id), (3, 3));
    assert_eq!(rx.leader, third.member_id, "the replacement keeps the leadership");
    assert_eq!(third.members.len(), 2);

    // An empty member id with the instance id leaves the static member.
    assert_eq!(
        c.leave("g", &[(String::new(), Some("i-1".into()))]).unwrap(),
        vec![Ok(())]
    );
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
}
