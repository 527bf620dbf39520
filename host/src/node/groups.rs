//! Consumer groups on the facade: membership (the group coordinator, in
//! memory) and committed offsets (durable, `committed`), as the Kafka and
//! HTTP faces use them.
//!
//! Invariants: a commit names the group's current generation and member
//! unless the group has no members ("simple" commits); a group is deleted
//! only while it has no members, and then its offsets go with it.

use std::sync::Arc;

use super::{CommittedOffset, Host, OffsetCommit};
use crate::error::Error;
use crate::groups::{Coordinator, Limits};

pub use crate::groups::{GroupDescription, GroupError, JoinRequest, JoinResponse, SyncRequest, SyncResponse};

/// Why a group operation that also touches stored offsets failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupOpError {
    #[error(transparent)]
    Group(GroupError),
    #[error(transparent)]
    Node(Error),
}

/// A group as listed: from membership, or only from committed offsets
/// (then `Empty`, with no protocol type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// `classic` or `consumer` (the group protocol).
    pub group_type: String,
}

/// The coordinator for `settings`, its expiry timers started.
pub(super) fn coordinator(settings: &crate::config::GroupSettings) -> Arc<Coordinator> {
    let c = Coordinator::new(Limits {
        max_groups: settings.max_groups,
        max_members: settings.max_members,
        min_session: settings.min_session_timeout,
        max_session: settings.max_session_timeout,
        initial_rebalance_delay: settings.initial_rebalance_delay,
        consumer_session: settings.consumer_session_timeout,
        consumer_heartbeat: settings.consumer_heartbeat_interval,
        ..Limits::default()
    });
    c.start_timers();
    c
}

impl Host {
    /// Joins (or rejoins) a group; resolves when the rebalance completes.
    pub async fn join_group(&self, req: JoinRequest) -> Result<JoinResponse, GroupError> {
        self.check_coordinator(&req.group_id)?;
        self.inner.groups.join(req).await
    }

    /// Resolves with this member's assignment once the leader has sent them.
    pub async fn sync_group(&self, req: SyncRequest) -> Result<SyncResponse, GroupError> {
        self.check_coordinator(&req.group_id)?;
        self.inner.groups.sync(req).await
    }

    pub fn heartbeat_group(
        &self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> Result<(), GroupError> {
        self.check_coordinator(group)?;
        self.inner.groups.heartbeat(group, generation, member, instance)
    }

    /// Removes members; one result per member, in order.
    pub fn leave_group(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_coordinator(group)?;
        self.inner.groups.leave(group, members)
    }

    /// Whether an offset commit by this member and generation (with
    /// `member_epochs`, OffsetCommit v9+: or member epoch) is accepted.
    pub fn check_group_commit(
        &self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
        member_epochs: bool,
    ) -> Result<(), GroupError> {
        self.check_coordinator(group)?;
        self.inner
            .groups
            .check_commit(group, generation, member, instance, member_epochs)
    }

    /// `Ok` when this node coordinates `group` (always, on a single node);
    /// else `NotCoordinator` naming the node that does.
    pub fn group_here(&self, group: &str) -> Result<(), GroupError> {
        self.check_coordinator(group)
    }

    /// Whether the group (of either protocol) has members now.
    pub fn group_has_members(&self, group: &str) -> bool {
        let classic = self.describe_group(group).is_some_and(|d| !d.members.is_empty());
        classic
            || self
                .inner
                .groups
                .describe_consumer(group)
                .is_some_and(|d| !d.members.is_empty())
    }

    /// The group's membership, if this node coordinates it and it has any.
    pub fn describe_group(&self, group: &str) -> Option<GroupDescription> {
        self.check_coordinator(group).ok()?;
        self.inner.groups.describe(group)
    }

    /// Groups with members, then groups that only have committed offsets.
    pub async fn list_groups(&self) -> Result<Vec<ListedGroup>, Error> {
        let mut out: Vec<ListedGroup> = self
            .inner
            .groups
            .list()
            .into_iter()
            .filter(|g| self.check_coordinator(&g.group_id).is_ok())
            .map(|g| ListedGroup {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                state: g.state,
                group_type: g.group_type.to_string(),
            })
            .collect();
        for g in self.groups_with_offsets().await? {
            if !out.iter().any(|l| l.group_id == g) {
                out.push(ListedGroup {
                    group_id: g,
                    protocol_type: String::new(),
                    state: "Empty".into(),
                    group_type: "classic".into(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Deletes a group without members, and its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), GroupOpError> {
        self.check_coordinator(group).map_err(GroupOpError::Group)?;
        // Held from the deletion of the (empty) group to that of its offsets,
        // so a commit by a member that joins in between lands after them.
        let guard = self.offsets_loaded().await.map_err(GroupOpError::Node)?;
        let known = match self.inner.groups.delete(group) {
            Ok(()) => true,
            Err(GroupError::GroupIdNotFound) => false,
            Err(e) => return Err(GroupOpError::Group(e)),
        };
        let deleted = self
            .delete_offsets_locked(guard, |k| k.0 == group)
            .await
            .map_err(GroupOpError::Node)?;
        if !known && deleted == 0 {
            return Err(GroupOpError::Group(GroupError::GroupIdNotFound));
        }
        Ok(())
    }
}

impl From<GroupOpError> for Error {
    fn from(e: GroupOpError) -> Self {
        match e {
            GroupOpError::Group(g) => g.into(),
            GroupOpError::Node(n) => n,
        }
    }
}

impl Host {
    /// Deletes `group`'s committed offsets of the (stream, partition)s
    /// named (Kafka OffsetDelete); one answer per partition, in order: done
    /// (also when none was committed), or `GroupSubscribedToTopic` when a
    /// member consumes its stream. The group must exist (members or
    /// committed offsets; else `GroupIdNotFound`). A group with members is
    /// refused whole unless it is a consumer group (`NonEmptyGroup`), and
    /// while it rebalances (`RebalanceInProgress`): its members'
    /// subscriptions are known once it is stable.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupOpError> {
        if group.is_empty() {
            return Err(GroupOpError::Group(GroupError::InvalidGroupId));
        }
        self.check_coordinator(group).map_err(GroupOpError::Group)?;
        // Held from the membership check to the deletion, so no commit by a
        // member that joined in between lands first and is deleted.
        let guard = self.offsets_loaded().await.map_err(GroupOpError::Node)?;
        let desc = self.describe_group(group);
        let mut subscribed = std::collections::HashSet::new();
        let consumer = self.inner.groups.describe_consumer(group);
        for m in consumer.iter().flat_map(|d| &d.members) {
            subscribed.extend(m.subscribed_names.iter().cloned());
            let held = m.assignment.iter().chain(&m.target);
            subscribed.extend(held.map(|(topic, _, _)| topic.clone()));
        }
        if let Some(d) = desc.as_ref().filter(|d| !d.members.is_empty()) {
            if d.protocol_type != "consumer" {
                return Err(GroupOpError::Group(GroupError::NonEmptyGroup));
            }
            if d.state != crate::groups::GroupState::Stable {
                return Err(GroupOpError::Group(GroupError::RebalanceInProgress));
            }
            for m in &d.members {
                let topics = decode_subscription(&m.metadata).ok_or(GroupOpError::Group(GroupError::NonEmptyGroup))?;
                subscribed.extend(topics);
            }
        }
        if desc.is_none() && consumer.is_none() && guard.of_group(group).is_empty() {
            return Err(GroupOpError::Group(GroupError::GroupIdNotFound));
        }
        let out: Vec<Result<(), GroupError>> = partitions
            .iter()
            .map(|(stream, _)| match subscribed.contains(stream) {
                true => Err(GroupError::GroupSubscribedToTopic),
                false => Ok(()),
            })
            .collect();
        let doomed: std::collections::HashSet<(&str, u32)> = partitions
            .iter()
            .zip(&out)
            .filter(|(_, r)| r.is_ok())
            .map(|((s, p), _)| (s.as_str(), *p))
            .collect();
        self.delete_offsets_locked(guard, |k| k.0 == group && doomed.contains(&(k.1.as_str(), k.2)))
            .await
            .map_err(GroupOpError::Node)?;
        Ok(out)
    }

    /// Deletes `group`'s committed offsets on `stream` (one partition, or
    /// every partition it committed on), as [`Host::delete_group_offsets`]
    /// does, as one answer: refused whole when a member consumes `stream`.
    /// Returns the group's offsets left on `stream`.
    pub async fn delete_group_stream_offsets(
        &self,
        group: &str,
        stream: &str,
        partition: Option<u32>,
    ) -> Result<Vec<CommittedOffset>, Error> {
        self.stream_end(stream, partition.unwrap_or(0))?;
        let on_stream = |o: &CommittedOffset| o.stream == stream;
        let partitions: Vec<(String, u32)> = match partition {
            Some(p) => vec![(stream.to_string(), p)],
            None => {
                let all = self.committed_offsets(group).await?;
                all.iter()
                    .filter(|o| on_stream(o))
                    .map(|o| (stream.to_string(), o.partition))
                    .collect()
            }
        };
        for r in self.delete_group_offsets(group, &partitions).await? {
            r?;
        }
        let left = self.committed_offsets(group).await?;
        Ok(left.into_iter().filter(on_stream).collect())
    }
}

/// A consumer-protocol message (version prefix, then the body at that
/// version, clamped to those the crate knows); `None` if the bytes are not
/// one.
fn decode_consumer_protocol<T: kafka_protocol::protocol::Decodable>(bytes: &bytes::Bytes) -> Option<T> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    bytes::Buf::advance(&mut buf, 2);
    T::decode(&mut buf, version.clamp(0, 3)).ok()
}

/// The topics of a consumer-protocol subscription.
fn decode_subscription(bytes: &bytes::Bytes) -> Option<Vec<String>> {
    let s: kafka_protocol::messages::ConsumerProtocolSubscription = decode_consumer_protocol(bytes)?;
    Some(s.topics.into_iter().map(|t| t.to_string()).collect())
}

/// One member, with its assignment decoded (consumer protocol).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Partitions per stream; empty until the group is stable (or when the
    /// assignment is not the consumer protocol's).
    pub assignment: Vec<AssignedPartitions>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AssignedPartitions {
    pub stream: String,
    pub partitions: Vec<i32>,
}

/// A committed offset with the partition's end and the group's lag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OffsetView {
    pub stream: String,
    pub partition: u32,
    pub offset: u64,
    /// The partition's end (next offset), if the stream still exists.
    pub end_offset: Option<u64>,
    /// Records after the committed offset.
    pub lag: Option<u64>,
    pub metadata: Option<String>,
    pub commit_ms: u64,
}

/// A group as `GET /groups/{group}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// `classic` or `consumer` (the consumer group protocol).
    pub group_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
    pub offsets: Vec<OffsetView>,
}

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(u64),
    /// The first record at or after this time (the end if none).
    Timestamp(u64),
}

/// A consumer-protocol assignment as (stream, partitions).
fn decode_assignment(bytes: &bytes::Bytes) -> Option<Vec<AssignedPartitions>> {
    let a: kafka_protocol::messages::ConsumerProtocolAssignment = decode_consumer_protocol(bytes)?;
    Some(
        a.assigned_partitions
            .into_iter()
            .map(|t| AssignedPartitions {
                stream: t.topic.0.as_str().to_string(),
                partitions: t.partitions,
            })
            .collect(),
    )
}

impl Host {
    /// Members, assignments, committed offsets and lag of `group`.
    pub async fn group_view(&self, group: &str) -> Result<GroupView, Error> {
        self.check_coordinator(group)?;
        let desc = self.describe_group(group);
        let consumer = self.inner.groups.describe_consumer(group);
        let offsets = self.committed_offsets(group).await?;
        if desc.is_none() && consumer.is_none() && offsets.is_empty() {
            return Err(GroupError::GroupIdNotFound.into());
        }
        let offsets = offsets
            .into_iter()
            .map(|c| {
                let end = self.stream_end(&c.stream, c.partition).ok();
                OffsetView {
                    lag: end.map(|e| e.saturating_sub(c.offset)),
                    end_offset: end,
                    stream: c.stream,
                    partition: c.partition,
                    offset: c.offset,
                    metadata: c.metadata,
                    commit_ms: c.commit_ms,
                }
            })
            .collect();
        let group_type = match consumer {
            Some(_) => "consumer",
            None => "classic",
        };
        let (state, protocol_type, protocol, members) = match (desc, consumer) {
            (_, Some(d)) => (
                d.state.as_str().to_string(),
                "consumer".to_string(),
                d.assignor,
                d.members
                    .into_iter()
                    .map(|m| MemberView {
                        assignment: m
                            .assignment
                            .into_iter()
                            .map(|(stream, _, partitions)| AssignedPartitions { stream, partitions })
                            .collect(),
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                    })
                    .collect(),
            ),
            (Some(d), None) => (
                d.state.as_str().to_string(),
                d.protocol_type,
                d.protocol_name,
                d.members
                    .into_iter()
                    .map(|m| MemberView {
                        assignment: decode_assignment(&m.assignment).unwrap_or_default(),
                        member_id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                    })
                    .collect(),
            ),
            (None, None) => ("Empty".to_string(), String::new(), String::new(), Vec::new()),
        };
        Ok(GroupView {
            group: group.to_string(),
            state,
            protocol_type,
            group_type: group_type.to_string(),
            protocol,
            members,
            offsets,
        })
    }

    /// Sets committed offsets from outside the group (HTTP): only while the
    /// group has no members; every partition is checked before anything is
    /// written, so either all are committed or none.
    pub async fn set_group_offsets(&self, group: &str, commits: &[OffsetCommit]) -> Result<(), Error> {
        // The coordinator's check below bounds the id's length.
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId.into());
        }
        self.check_coordinator(group)?;
        // Held from the membership check to the commit, so a member that
        // joins in between commits after it, not before.
        let guard = self.offsets_loaded().await?;
        if self.group_has_members(group) {
            return Err(GroupError::NonEmptyGroup.into());
        }
        self.check_group_commit(group, -1, "", None, false)?;
        for c in commits {
            self.stream_end(&c.stream, c.partition)?;
            if let Some(refused) = super::committed::metadata_refusal(c) {
                return Err(Error::invalid(refused.to_string()));
            }
        }
        for r in self.commit_offsets_locked(guard, group, commits).await? {
            r.map_err(|e| Error::invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Moves `group`'s offsets on `stream` (all partitions, or those named)
    /// to `to`; only while the group has no members. Returns the new offsets.
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        stream: &str,
        to: ResetTo,
        partitions: Option<Vec<u32>>,
    ) -> Result<Vec<CommittedOffset>, Error> {
        let info = self.describe_stream(stream)?;
        let parts: Vec<u32> = match partitions {
            Some(p) => p,
            None => (0..u32::try_from(info.partitions.len()).unwrap_or(u32::MAX)).collect(),
        };
        let mut commits = Vec::with_capacity(parts.len());
        for p in parts {
            let range = info.partitions.get(p as usize).ok_or_else(|| {
                Error::new(
                    crate::error::ErrorKind::NotFound,
                    "partition_not_found",
                    format!("stream {stream:?} has no partition {p}"),
                )
            })?;
            let offset = match to {
                ResetTo::Earliest => range.start,
                ResetTo::Latest => range.end,
                ResetTo::Offset(o) => o.clamp(range.start, range.end),
                ResetTo::Timestamp(ts) => self
                    .offset_for_timestamp(stream, p, ts)
                    .await?
                    .map_or(range.end, |t| t.offset),
            };
            commits.push(OffsetCommit {
                stream: stream.to_string(),
                partition: p,
                offset,
                leader_epoch: -1,
                metadata: None,
            });
        }
        self.set_group_offsets(group, &commits).await?;
        let all = self.committed_offsets(group).await?;
        Ok(all.into_iter().filter(|c| c.stream == stream).collect())
    }
}
