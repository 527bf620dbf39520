//! Tests of fetch sessions (`fetch_session.rs`).
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};

use super::*;

fn partition(p: i32, offset: i64) -> FetchPartition {
    let mut fp = FetchPartition::default();
    fp.partition = p;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = 1024;
    fp.current_leader_epoch = -1;
    fp
}

fn request(id: i32, epoch: i32, parts: &[(&str, i32, i64)], forget: &[(&str, i32)]) -> FetchRequest {
    let mut r = FetchRequest::default();
    r.session_id = id;
    r.session_epoch = epoch;
    for (topic, p, offset) in parts {
        let mut ft = FetchTopic::default();
        ft.topic = TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.to_string()));
        ft.partitions = vec![partition(*p, *offset)];
        r.topics.push(ft);
    }
    for (topic, p) in forget {
        let mut f = ForgottenTopic::default();
        f.topic = TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.to_string()));
        f.partitions = vec![*p];
        r.forgotten_topics_data.push(f);
    }
    r
}

fn named(name: &str) -> Topic {
    Topic::Name(Arc::from(name))
}

/// A request that names topics by id (v13+): `parts` as (id, partition,
/// offset), `forget` as (id, partition).
fn by_id(id: i32, epoch: i32, parts: &[(Uuid, i32, i64)], forget: &[(Uuid, i32)]) -> FetchRequest {
    let mut r = request(id, epoch, &[], &[]);
    for (topic, p, offset) in parts {
        let mut ft = FetchTopic::default();
        ft.topic_id = *topic;
        ft.partitions = vec![partition(*p, *offset)];
        r.topics.push(ft);
    }
    for (topic, p) in forget {
        let mut f = ForgottenTopic::default();
        f.topic_id = *topic;
        f.partitions = vec![*p];
        r.forgotten_topics_data.push(f);
    }
    r
}

#[test]
fn from_v13_a_session_keeps_topics_by_id_and_refuses_names() {
    let s = FetchSessions::default();
    let (x, y) = (Uuid::from_u128(0x11), Uuid::from_u128(0x22));
    let (mode, listed) = s.begin(&by_id(0, 0, &[(x, 0, 5), (y, 0, 1)], &[]), 13).expect("open");
    let Mode::Opened(id) = mode else { panic!("{mode:?}") };
    assert_eq!(
        listed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        [(Topic::Id(x), 0), (Topic::Id(y), 0)]
    );
    // Forgetting by id.
    let (_, listed) = s.begin(&by_id(id, 1, &[], &[(y, 0)]), 17).expect("epoch 1");
    assert_eq!(keys(&listed), [(x.simple().to_string(), 0, 5)]);
    // Continued below v13 (names): FETCH_SESSION_TOPIC_ID_ERROR.
    assert_eq!(s.begin(&request(id, 2, &[], &[]), 12).err(), Some(106));
    // And a session opened by names is not continued by ids.
    let (mode, _) = s.begin(&request(0, 0, &[("a", 0, 0)], &[]), 12).expect("open");
    assert_eq!(s.begin(&by_id(mode.session_id(), 1, &[], &[]), 13).err(), Some(106));
}

fn answer(hw: i64) -> Found {
    Found {
        error_code: 0,
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: 0,
    }
}

fn keys(listed: &[(Key, Cached)]) -> Vec<(String, i32, i64)> {
    listed
        .iter()
        .map(|((t, p), c)| (t.to_string(), *p, c.fetch_offset))
        .collect()
}

#[test]
fn a_session_answers_only_what_changed_and_keeps_its_partitions() {
    let s = FetchSessions::default();
    let (mode, listed) = s
        .begin(&request(0, 0, &[("a", 0, 5), ("a", 1, 7)], &[]), 12)
        .expect("open");
    let Mode::Opened(id) = mode else { panic!("{mode:?}") };
    assert!(id > 0);
    assert_eq!(keys(&listed), [("a".into(), 0, 5), ("a".into(), 1, 7)]);
    let ka = (named("a"), 0);
    let kb = (named("a"), 1);
    // The opening answer is whole.
    let (a0, a1) = (answer(10), answer(7));
    assert_eq!(s.finish(mode, &[(&ka, &a0, true), (&kb, &a1, false)]), [true, true]);
    // Epoch 1 sends nothing: both partitions are read at their offsets,
    // a/0 last as it answered with records; only it is answered.
    let (mode, listed) = s.begin(&request(id, 1, &[], &[]), 12).expect("epoch 1");
    assert_eq!(mode, Mode::Incremental(id));
    assert_eq!(keys(&listed), [("a".into(), 1, 7), ("a".into(), 0, 5)]);
    assert_eq!(s.finish(mode, &[(&kb, &a1, false), (&ka, &a0, true)]), [false, true]);
    // Epoch 2 moves partition 0, adds b/0, forgets a/1; a moved high
    // watermark or an error is news too.
    let (mode, listed) = s
        .begin(&request(id, 2, &[("a", 0, 10), ("b", 0, 0)], &[("a", 1)]), 12)
        .expect("2");
    assert_eq!(keys(&listed), [("a".into(), 0, 10), ("b".into(), 0, 0)]);
    let kc = (named("b"), 0);
    let mut err = answer(3);
    err.error_code = 6;
    assert_eq!(
        s.finish(mode, &[(&ka, &answer(10), false), (&kc, &err, false)]),
        [false, true]
    );
    let (mode, _) = s.begin(&request(id, 3, &[], &[]), 12).expect("3");
    assert_eq!(
        s.finish(mode, &[(&ka, &answer(11), false), (&kc, &answer(3), false)]),
        [true, true]
    );
    let (mode, _) = s.begin(&request(id, 4, &[], &[]), 12).expect("4");
    assert_eq!(
        s.finish(mode, &[(&ka, &answer(11), false), (&kc, &answer(3), false)]),
        [false, false]
    );
}

/// Partitions answered with records go to the end of the read order,
/// so those an answer's byte limit left out come first next time.
#[test]
fn partitions_with_records_move_to_the_end_of_the_order() {
    let s = FetchSessions::default();
    let parts = [("t", 0, 0), ("t", 1, 0), ("t", 2, 0), ("t", 3, 0)];
    let (mode, listed) = s.begin(&request(0, 0, &parts, &[]), 12).expect("open");
    let Mode::Opened(id) = mode else { panic!("{mode:?}") };
    let order = |listed: &[(Key, Cached)]| listed.iter().map(|((_, p), _)| *p).collect::<Vec<_>>();
    assert_eq!(order(&listed), [0, 1, 2, 3]);
    let k = |p: i32| (named("t"), p);
    let (k0, k1, k2, k3) = (k(0), k(1), k(2), k(3));
    let hw = answer(9);
    // The budget ran out after t/1: t/0 and t/1 answered with records.
    s.finish(
        mode,
        &[(&k0, &hw, true), (&k1, &hw, true), (&k2, &hw, false), (&k3, &hw, false)],
    );
    let (mode, listed) = s.begin(&request(id, 1, &[], &[]), 12).expect("1");
    assert_eq!(order(&listed), [2, 3, 0, 1]);
    s.finish(
        mode,
        &[(&k2, &hw, true), (&k3, &hw, false), (&k0, &hw, false), (&k1, &hw, true)],
    );
    let (_, listed) = s.begin(&request(id, 2, &[("t", 3, 4)], &[("t", 0)]), 12).expect("2");
    // An update keeps its place; a forgotten partition leaves the order.
    assert_eq!(order(&listed), [3, 2, 1]);
    assert_eq!(listed[0].1.fetch_offset, 4);
}

#[test]
fn wrong_epochs_unknown_ids_and_closed_sessions_are_refused() {
    let s = FetchSessions::default();
    let (Mode::Opened(id), _) = s.begin(&request(0, 0, &[("a", 0, 0)], &[]), 7).expect("open") else {
        panic!("no session")
    };
    assert_eq!(
        s.begin(&request(id, 2, &[], &[]), 7).unwrap_err(),
        codes::invalid_fetch_session_epoch()
    );
    assert_eq!(
        s.begin(&request(id + 1, 1, &[], &[]), 7).unwrap_err(),
        codes::fetch_session_not_found()
    );
    assert!(s.begin(&request(id, 1, &[], &[]), 7).is_ok());
    // The same epoch again (a retried or concurrent fetch): refused.
    assert_eq!(
        s.begin(&request(id, 1, &[], &[]), 7).unwrap_err(),
        codes::invalid_fetch_session_epoch()
    );
    // Epoch -1 closes it and is answered without a session.
    let (mode, listed) = s.begin(&request(id, -1, &[("a", 0, 3)], &[]), 7).expect("close");
    assert_eq!((mode, keys(&listed)), (Mode::Sessionless, vec![("a".into(), 0, 3)]));
    assert_eq!(
        s.begin(&request(id, 2, &[], &[]), 7).unwrap_err(),
        codes::fetch_session_not_found()
    );
    // Below v7 there are no sessions at all.
    assert_eq!(
        s.begin(&request(0, 0, &[("a", 0, 0)], &[]), 6).expect("v6").0,
        Mode::Sessionless
    );
    // Epochs wrap from the largest to 1.
    let (Mode::Opened(id), _) = s.begin(&request(0, 0, &[("a", 0, 0)], &[]), 7).expect("open") else {
        panic!("no session")
    };
    if let Some(session) = s.sessions.lock().expect("lock").get_mut(&id) {
        session.next_epoch = i32::MAX;
    }
    assert!(s.begin(&request(id, i32::MAX, &[], &[]), 7).is_ok());
    assert!(s.begin(&request(id, 1, &[], &[]), 7).is_ok());
}

#[test]
fn past_the_cap_the_least_recently_used_session_goes() {
    let s = FetchSessions::default();
    let mut ids = Vec::new();
    for _ in 0..MAX_SESSIONS {
        let (Mode::Opened(id), _) = s.begin(&request(0, 0, &[("a", 0, 0)], &[]), 7).expect("open") else {
            panic!("no session")
        };
        ids.push(id);
    }
    // The first is used again, so the second is the oldest.
    assert!(s.begin(&request(ids[0], 1, &[], &[]), 7).is_ok());
    let (Mode::Opened(new), _) = s.begin(&request(0, 0, &[("a", 0, 0)], &[]), 7).expect("open") else {
        panic!("no session")
    };
    assert!(!ids.contains(&new));
    assert_eq!(s.sessions.lock().expect("lock").len(), MAX_SESSIONS);
    assert_eq!(
        s.begin(&request(ids[1], 1, &[], &[]), 7).unwrap_err(),
        codes::fetch_session_not_found()
    );
    assert!(s.begin(&request(ids[0], 2, &[], &[]), 7).is_ok());
}

#[test]
fn sessions_too_big_to_keep_are_answered_without_one() {
    let s = FetchSessions::default();
    let many: Vec<(&str, i32, i64)> = (0..=MAX_SESSION_PARTITIONS)
        .map(|p| ("a", i32::try_from(p).expect("index"), 0))
        .collect();
    let (mode, listed) = s.begin(&request(0, 0, &many, &[]), 7).expect("big");
    assert_eq!((mode, listed.len()), (Mode::Sessionless, MAX_SESSION_PARTITIONS + 1));
    assert!(s.sessions.lock().expect("lock").is_empty());
    // Grown past the cap by an incremental fetch: closed, not found.
    let (Mode::Opened(id), _) = s.begin(&request(0, 0, &many[..10], &[]), 7).expect("open") else {
        panic!("no session")
    };
    assert_eq!(
        s.begin(&request(id, 1, &many, &[]), 7).unwrap_err(),
        codes::fetch_session_not_found()
    );
    assert!(s.sessions.lock().expect("lock").is_empty());
    // The partitions of all sessions are capped too: opening sessions
    // of 10,000 past 500,000 in all closes the oldest.
    let big = &many[..MAX_SESSION_PARTITIONS];
    let mut ids = Vec::new();
    for _ in 0..=(MAX_CACHED_PARTITIONS / MAX_SESSION_PARTITIONS) {
        let (Mode::Opened(id), _) = s.begin(&request(0, 0, big, &[]), 7).expect("open") else {
            panic!("no session")
        };
        ids.push(id);
    }
    let sessions = s.sessions.lock().expect("lock");
    let cached: usize = sessions.values().map(|x| x.partitions.len()).sum();
    assert!(cached <= MAX_CACHED_PARTITIONS, "{cached}");
    assert!(!sessions.contains_key(&ids[0]));
    assert!(sessions.contains_key(&ids[ids.len() - 1]));
}
