//! Group and offset deletion against members joining at the same time:
//! what a deletion checks about the group's members stays true until the
//! offsets are gone, as Kafka's coordinator does under the group's lock.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{GroupOpError, Host, OffsetCommit};
use crate::Settings;
use crate::groups::{GroupError, JoinRequest, SyncRequest};

async fn open(dir: &std::path::Path) -> Host {
    let mut settings = Settings {
        data_dir: dir.to_path_buf(),
        kafka_listen: None,
        ..Settings::default()
    };
    settings.groups.initial_rebalance_delay = Duration::ZERO;
    Host::open(settings).await.expect("open")
}

/// Consumer-protocol metadata subscribing to `topics` (version 0).
fn subscription(topics: &[&str]) -> Bytes {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect();
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    s.encode(&mut buf, 0).expect("encode");
    buf.freeze()
}

/// One member joins `group` subscribed to `topics` and syncs: the group is
/// stable with it.
async fn join_alone(host: &Host, group: &str, topics: &[&str]) {
    let joined = host
        .join_group(JoinRequest {
            group_id: group.into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(30),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(topics))],
            ..JoinRequest::default()
        })
        .await
        .expect("join");
    let member = joined.member_id.clone();
    host.sync_group(SyncRequest {
        group_id: group.into(),
        generation_id: joined.generation_id,
        member_id: member.clone(),
        assignments: vec![(member, Bytes::new())],
        ..SyncRequest::default()
    })
    .await
    .expect("sync");
}

async fn commit(host: &Host, group: &str, stream: &str, offset: u64) {
    let c = OffsetCommit {
        stream: stream.into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
    };
    for r in host.commit_offsets(group, &[c]).await.expect("commit") {
        r.expect("accepted");
    }
}

/// Lets spawned work run until it waits on something.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Runs `op` on group `g` (offset 7 committed on `b`, no members) while
/// another offsets operation holds their lock; meanwhile a member joins,
/// consuming `b`. Returns what `op` answered and the offsets left.
async fn while_a_member_joins<T, F>(op: impl FnOnce(Host) -> F) -> (T, Vec<u64>)
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let dir = tempfile::tempdir().expect("tmp");
    let host = open(dir.path()).await;
    host.create_stream("b", 1).await.expect("stream");
    commit(&host, "g", "b", 7).await;

    let held = host.offsets_loaded().await.expect("offsets");
    let running = tokio::spawn(op(host.clone()));
    settle().await;
    join_alone(&host, "g", &["b"]).await;
    drop(held);

    let answer = running.await.expect("task");
    let left = host.committed_offsets("g").await.expect("offsets");
    (answer, left.iter().map(|o| o.offset).collect())
}

#[tokio::test]
async fn offset_delete_sees_a_member_that_joined_while_it_waited() {
    let (answers, left) =
        while_a_member_joins(|host| async move { host.delete_group_offsets("g", &[("b".into(), 0)]).await }).await;
    let answers = answers.expect("delete");
    assert!(
        matches!(answers.as_slice(), [Err(GroupError::GroupSubscribedToTopic)]),
        "{answers:?}"
    );
    assert_eq!(left, vec![7]);
}

#[tokio::test]
async fn group_delete_sees_a_member_that_joined_while_it_waited() {
    let (refused, left) = while_a_member_joins(|host| async move { host.delete_group("g").await }).await;
    assert!(
        matches!(refused, Err(GroupOpError::Group(GroupError::NonEmptyGroup))),
        "{refused:?}"
    );
    assert_eq!(left, vec![7]);
}

#[tokio::test]
async fn offsets_set_from_outside_see_a_member_that_joined_while_they_waited() {
    let reset = OffsetCommit {
        stream: "b".into(),
        partition: 0,
        offset: 0,
        leader_epoch: -1,
        metadata: None,
    };
    let (refused, left) = while_a_member_joins(|host| async move { host.set_group_offsets("g", &[reset]).await }).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.code() == "group_not_empty"),
        "{refused:?}"
    );
    assert_eq!(left, vec![7]);
}

/// Deleting a stream deletes the offsets groups committed on it, as Kafka
/// does: a stream created again under the name is read from the group's
/// reset position, not from the old stream's offsets. Other streams'
/// offsets stay; a delete of a stream already gone removes offsets left
/// behind, and a restart does not bring them back.
#[tokio::test]
async fn deleting_a_stream_deletes_the_offsets_committed_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = open(dir.path()).await;
    for s in ["s", "other"] {
        host.create_stream(s, 1).await.expect("create");
    }
    commit(&host, "g", "s", 5).await;
    commit(&host, "g", "other", 3).await;
    commit(&host, "h", "s", 2).await;
    host.delete_stream("s").await.expect("delete");
    host.create_stream("s", 1).await.expect("create again");
    let streams = |c: Vec<super::CommittedOffset>| c.into_iter().map(|o| (o.stream, o.offset)).collect::<Vec<_>>();
    assert_eq!(
        streams(host.committed_offsets("g").await.expect("g")),
        [("other".to_string(), 3)]
    );
    assert!(host.committed_offsets("h").await.expect("h").is_empty());

    // Offsets left behind by a delete that could not remove them (here:
    // the stream deleted under the facade) go at the next delete.
    commit(&host, "g", "s", 1).await;
    host.inner.log.delete_stream("s").await.expect("log delete");
    let err = host.delete_stream("s").await.expect_err("already gone");
    assert_eq!(err.code(), "stream_not_found");
    assert_eq!(
        streams(host.committed_offsets("g").await.expect("g")),
        [("other".to_string(), 3)]
    );

    host.shutdown().await;
    drop(host);
    let host = open(dir.path()).await;
    assert_eq!(
        streams(host.committed_offsets("g").await.expect("g")),
        [("other".to_string(), 3)]
    );
    assert!(host.committed_offsets("h").await.expect("h").is_empty());
    host.shutdown().await;
}
