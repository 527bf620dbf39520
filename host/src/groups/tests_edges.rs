//! The coordinator's edges: limits, the initial rebalance delay, pending
//! members that never return, protocol choice, rejoins without a
//! rebalance, shutdown, the timer task and generation overflow.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::tests::{Within, form, heartbeat, limits, meta, new_id, req, stable, sync_req, with_id};
use super::*;

#[tokio::test]
async fn limits_are_checked_before_anything_is_stored() {
    let small = Limits {
        max_groups: 2,
        max_members: 2,
        max_metadata_bytes: 64,
        max_id_bytes: 16,
        ..limits()
    };
    let c = Coordinator::new(small);
    let g1 = c.join(req("g1", "a")).within().await.unwrap();
    let _g2 = c.begin_join(req("g2", "a"));
    assert_eq!(c.join(req("g3", "a")).within().await, Err(GroupError::TooManyGroups));
    assert_eq!(c.list().len(), 2);

    let _b = c.begin_join(req("g1", "b"));
    assert_eq!(
        c.join(req("g1", "c")).within().await,
        Err(GroupError::GroupMaxSizeReached)
    );
    assert_eq!(c.describe("g1").unwrap().members.len(), 2);
    // A pending member counts too, and a known member may still rejoin.
    assert_eq!(new_id(&c, req("g2", "b")).within().await.len(), 36);
    assert_eq!(
        c.join(req("g2", "c")).within().await,
        Err(GroupError::GroupMaxSizeReached)
    );
    let again = c.join(with_id(req("g1", "a"), &g1.member_id)).within().await.unwrap();
    assert_eq!((again.generation_id, again.members.len()), (2, 2));

    let mut big = req("g1", "d");
    big.protocols = vec![("range".into(), Bytes::from(vec![0u8; 60]))]; // 65 bytes with the name
    assert_eq!(c.join(big).within().await, Err(GroupError::TooLarge));
    for session in [Duration::from_secs(5), Duration::from_secs(31 * 60)] {
        let r = JoinRequest {
            session_timeout: session,
            ..req("g1", "d")
        };
        assert_eq!(c.join(r).within().await, Err(GroupError::InvalidSessionTimeout));
    }
    assert_eq!(c.join(req("", "d")).within().await, Err(GroupError::InvalidGroupId));
    assert_eq!(
        c.join(req("seventeen-bytes-x", "d")).within().await,
        Err(GroupError::InvalidGroupId)
    );
    assert_eq!(
        c.join(req("g1", "seventeen-bytes-x")).within().await,
        Err(GroupError::TooLarge)
    );
    let long_instance = JoinRequest {
        group_instance_id: Some("x".repeat(17)),
        ..req("g1", "d")
    };
    assert_eq!(c.join(long_instance).within().await, Err(GroupError::TooLarge));
    assert_eq!(c.heartbeat("", 1, "m", None), Err(GroupError::InvalidGroupId));
    assert_eq!(c.heartbeat("g1", 1, &"m".repeat(37), None), Err(GroupError::TooLarge));
    assert_eq!(
        c.sync(sync_req("g1", 1, &g1.member_id, &[])).within().await,
        Err(GroupError::IllegalGeneration)
    );

    let d = Limits::default();
    assert_eq!(
        (d.max_groups, d.max_members, d.max_id_bytes, d.max_metadata_bytes),
        (10_000, 1_000, 255, 1 << 20)
    );
    assert_eq!(
        (d.min_session, d.max_session),
        (Duration::from_secs(6), Duration::from_secs(1800))
    );
    assert_eq!(d.initial_rebalance_delay, Duration::from_secs(3));
}

#[tokio::test]
async fn an_oversized_assignment_is_refused_and_the_group_keeps_waiting() {
    let c = Coordinator::new(Limits {
        max_metadata_bytes: 16,
        ..limits()
    });
    let j = form(&c, "g", &["a", "b"]).within().await;
    let mut sb = c.begin_sync(sync_req("g", 1, &j[1].member_id, &[]));
    let too_big = sync_req("g", 1, &j[0].member_id, &[(&j[1].member_id, "12345678901234567")]);
    assert_eq!(c.sync(too_big).within().await, Err(GroupError::TooLarge));
    assert!(!sb.is_resolved());
    c.sync(sync_req(
        "g",
        1,
        &j[0].member_id,
        &[(&j[1].member_id, "1234567890123456")],
    ))
    .within()
    .await
    .unwrap();
    assert_eq!(sb.within().await.unwrap().assignment, Bytes::from("1234567890123456"));
}

#[tokio::test]
async fn a_new_group_waits_the_initial_delay_while_members_keep_arriving() {
    let c = Coordinator::new(Limits::default());
    let mut wa = c.begin_join(req("g", "a"));
    c.advance(Duration::from_secs(2));
    let mut wb = c.begin_join(req("g", "b"));
    c.advance(Duration::from_secs(1)); // the delay ends, but b arrived during it
    assert!(!wa.is_resolved() && !wb.is_resolved());
    c.advance(Duration::from_secs(3));
    let (ra, rb) = (wa.within().await.unwrap(), wb.within().await.unwrap());
    assert_eq!((ra.generation_id, rb.generation_id, ra.members.len()), (1, 1, 2));

    // The delay is capped by the rebalance timeout.
    let mut w = c.begin_join(JoinRequest {
        rebalance_timeout: Duration::from_secs(1),
        ..req("h", "a")
    });
    assert!(!w.is_resolved());
    c.advance(Duration::from_secs(1));
    assert_eq!(w.within().await.unwrap().generation_id, 1);
}

#[tokio::test]
async fn a_pending_member_that_never_returns_expires_and_unblocks_the_rebalance() {
    let c = Coordinator::new(limits());
    let a = new_id(&c, req("g", "a")).within().await;
    let b = new_id(&c, req("g", "b")).within().await;
    let mut wa = c.begin_join(with_id(req("g", "a"), &a));
    c.advance(Duration::from_secs(9));
    assert!(!wa.is_resolved(), "b may still come back");
    c.advance(Duration::from_secs(2));
    let ra = wa.within().await.unwrap();
    assert_eq!((ra.generation_id, ra.members.len()), (1, 1));
    assert_eq!(
        c.join(with_id(req("g", "b"), &b)).within().await,
        Err(GroupError::UnknownMemberId)
    );

    // A group whose only member never came back is not kept.
    new_id(&c, req("lonely", "z")).within().await;
    assert!(c.describe("lonely").is_some());
    c.advance(Duration::from_secs(11));
    assert!(c.describe("lonely").is_none());
}

#[tokio::test]
async fn a_pending_member_that_leaves_unblocks_a_rebalance_but_never_starts_one() {
    let c = Coordinator::new(limits());
    let a = stable(&c, "g", &["a"]).within().await.remove(0);
    let p = new_id(&c, req("g", "p")).within().await;
    assert_eq!(c.leave("g", &[(p, None)]).unwrap(), vec![Ok(())]);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);

    let q = new_id(&c, req("g", "q")).within().await;
    let wx = c.begin_join(req("g", "x"));
    let mut wa = c.begin_join(with_id(req("g", "a"), &a.member_id));
    assert!(!wa.is_resolved(), "q may still come back");
    assert_eq!(c.leave("g", &[(q, None)]).unwrap(), vec![Ok(())]);
    assert_eq!(
        (
            wa.within().await.unwrap().generation_id,
            wx.within().await.unwrap().generation_id
        ),
        (2, 2)
    );
}

fn with_protocols(mut r: JoinRequest, names: &[&str]) -> JoinRequest {
    r.protocols = names.iter().map(|n| (n.to_string(), meta(n))).collect();
    r
}

#[tokio::test]
async fn the_protocol_is_chosen_by_votes_and_inconsistent_members_are_refused() {
    let c = Coordinator::new(limits());
    let ids = [
        new_id(&c, req("g", "a")).within().await,
        new_id(&c, req("g", "b")).within().await,
        new_id(&c, req("g", "c")).within().await,
    ];
    let prefs: [&[&str]; 3] = [&["range", "rr"], &["rr", "range"], &["rr", "range", "sticky"]];
    let waits: Vec<_> = ids
        .iter()
        .zip(prefs)
        .map(|(id, p)| c.begin_join(with_protocols(with_id(req("g", "x"), id), p)))
        .collect();
    let mut answers = Vec::new();
    for w in waits {
        answers.push(w.within().await.unwrap());
    }
    assert!(
        answers.iter().all(|r| r.protocol_name == "rr"),
        "two votes beat the leader's one"
    );
    assert_eq!(answers[0].members[0].metadata, meta("rr"));

    // A tie goes to the leader's preference.
    let ids = [
        new_id(&c, req("t", "a")).within().await,
        new_id(&c, req("t", "b")).within().await,
    ];
    let prefs: [&[&str]; 2] = [&["range", "rr"], &["rr", "range"]];
    let waits: Vec<_> = ids
        .iter()
        .zip(prefs)
        .map(|(id, p)| c.begin_join(with_protocols(with_id(req("t", "x"), id), p)))
        .collect();
    for w in waits {
        assert_eq!(w.within().await.unwrap().protocol_name, "range");
    }

    let inconsistent = Err(GroupError::InconsistentGroupProtocol);
    assert_eq!(
        c.join(with_protocols(req("g", "d"), &["sticky"])).within().await,
        inconsistent
    );
    assert_eq!(
        c.join(JoinRequest {
            protocol_type: "connect".into(),
            ..req("g", "d")
        })
        .within()
        .await,
        inconsistent
    );
    assert_eq!(
        c.join(with_protocols(req("new", "d"), &[])).within().await,
        inconsistent
    );
    assert!(c.describe("new").is_none());
    let mut wrong = sync_req("g", 1, &answers[1].member_id, &[]);
    wrong.protocol_name = Some("range".into());
    assert_eq!(c.sync(wrong).within().await, Err(GroupError::InconsistentGroupProtocol));
}

#[tokio::test]
async fn a_follower_rejoining_a_stable_group_keeps_the_generation_but_the_leader_rebalances() {
    let c = Coordinator::new(limits());
    let j = stable(&c, "g", &["a", "b"]).within().await;
    let again = c.join(with_id(req("g", "b"), &j[1].member_id)).within().await.unwrap();
    assert_eq!(
        (again.generation_id, again.leader.as_str()),
        (1, j[0].member_id.as_str())
    );
    assert!(again.members.is_empty());
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);

    let mut wa = c.begin_join(with_id(req("g", "a"), &j[0].member_id));
    assert!(!wa.is_resolved());
    assert_eq!(heartbeat(&c, "g", &j[1]), Err(GroupError::RebalanceInProgress));
    let rb = c.join(with_id(req("g", "b"), &j[1].member_id)).within().await.unwrap();
    assert_eq!((rb.generation_id, wa.within().await.unwrap().members.len()), (2, 2));
}

#[tokio::test]
async fn a_new_rebalance_answers_waiting_syncs_with_rebalance_in_progress() {
    let c = Coordinator::new(limits());
    let j = form(&c, "g", &["a", "b"]).within().await;
    let mut sb = c.begin_sync(sync_req("g", 1, &j[1].member_id, &[]));
    assert!(!sb.is_resolved());
    let _d = c.begin_join(req("g", "d"));
    assert_eq!(sb.within().await, Err(GroupError::RebalanceInProgress));
    assert_eq!(c.describe("g").unwrap().state, GroupState::PreparingRebalance);
}

#[tokio::test]
async fn stop_answers_every_waiting_join_and_sync() {
    let c = Coordinator::new(limits());
    let j = form(&c, "s", &["a", "b"]).within().await;
    let sb = c.begin_sync(sync_req("s", 1, &j[1].member_id, &[]));
    let a = new_id(&c, req("g", "a")).within().await;
    new_id(&c, req("g", "b")).within().await;
    let mut wa = c.begin_join(with_id(req("g", "a"), &a));
    assert!(!wa.is_resolved());
    c.stop();
    assert_eq!(wa.within().await, Err(GroupError::CoordinatorNotAvailable));
    assert_eq!(sb.within().await, Err(GroupError::CoordinatorNotAvailable));
    assert_eq!(
        c.join(req("g", "c")).within().await,
        Err(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(heartbeat(&c, "s", &j[0]), Err(GroupError::CoordinatorNotAvailable));
    assert!(c.list().is_empty());
}

#[tokio::test]
async fn the_timer_task_expires_silent_members_and_holds_only_a_weak_reference() {
    let fast = Limits {
        min_session: Duration::from_millis(10),
        ..limits()
    };
    let c = Coordinator::new(fast);
    let r = JoinRequest {
        session_timeout: Duration::from_millis(50),
        ..req("g", "a")
    };
    let a = c.join(r).within().await.unwrap();
    c.sync(sync_req("g", 1, &a.member_id, &[])).within().await.unwrap();
    c.start_timers();
    assert_eq!(Arc::strong_count(&c), 1, "the task holds only a Weak");
    let mut state = GroupState::Stable;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).within().await;
        state = c.describe("g").unwrap().state;
        if state == GroupState::Empty {
            break;
        }
    }
    assert_eq!(state, GroupState::Empty);
}

#[tokio::test]
async fn the_generation_restarts_at_one_after_overflow() {
    let c = Coordinator::new(limits());
    let a = stable(&c, "g", &["a"]).within().await.remove(0);
    c.lock().groups.get_mut("g").unwrap().generation = i32::MAX;
    let again = c
        .join(with_id(with_protocols(req("g", "a"), &["rr"]), &a.member_id))
        .within()
        .await
        .unwrap();
    assert_eq!(again.generation_id, 1);
}
