//! The consumer group protocol (ConsumerGroupHeartbeat, KIP-848): groups
//! whose members only heartbeat, while the coordinator computes who
//! consumes what with a server-side assignor and hands each member its
//! partitions as others release them.
//!
//! These groups live beside the classic ones in the same [`Coordinator`],
//! under its one lock, in memory (as classic membership does): after a
//! restart members get `UnknownMemberId` and join again. A group id is
//! either kind: a heartbeat for a classic group with members is refused
//! (`GroupIdNotFound`: not a consumer group), and a JoinGroup for a consumer
//! group with members is `InconsistentGroupProtocol`; an empty group of one
//! kind turns into the other.
//!
//! Invariants: see `group.rs` (epochs and target) and `member.rs` (no
//! partition held by two members). Topics are named by id on the wire; the
//! caller resolves names, ids and partition counts through [`Topics`],
//! read under the lock, so it must not block.

mod assignor;
mod group;
mod member;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_model;

use std::collections::BTreeSet;
use std::collections::hash_map::Entry;
use std::time::Duration;

use uuid::Uuid;

pub use assignor::ASSIGNORS;
pub(super) use group::ConsumerGroup;

use super::{Coordinator, GroupError, check_len};

/// A group's partitions by topic name.
pub type Partitions = BTreeSet<(String, i32)>;
/// Partitions as the wire names them: per topic id.
pub type WirePartitions = Vec<(Uuid, Vec<i32>)>;

/// A topic as an assignor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: Uuid,
    pub partitions: u32,
}

/// The topics a group may subscribe to, as the node knows them now.
pub trait Topics {
    fn topic(&self, name: &str) -> Option<TopicMeta>;
    /// Every topic name (to match regular expressions against).
    fn names(&self) -> Vec<String>;
}

/// A ConsumerGroupHeartbeat request. `None` fields did not change since
/// the member's last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// Chosen by the client (v1); may be empty on a join at v0, then the
    /// coordinator makes one.
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves for now (static members); else the
    /// member's current epoch.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout: Option<Duration>,
    pub subscribed_names: Option<Vec<String>>,
    /// An empty pattern clears it.
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<WirePartitions>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    /// The member's whole assignment, when it changed (or on a join).
    pub assignment: Option<WirePartitions>,
}

/// A consumer group's state as ListGroups names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// Members are moving toward the target assignment.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub epoch: i32,
    /// Always the group epoch: the target is computed at once.
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    /// (topic name, topic id, partitions).
    pub assignment: Vec<(String, Uuid, Vec<i32>)>,
    pub target: Vec<(String, Uuid, Vec<i32>)>,
}

impl Coordinator {
    /// One ConsumerGroupHeartbeat: joins, leaves, or reports what the member
    /// owns, and answers its epoch and (when it changed) its assignment.
    pub fn consumer_heartbeat(
        &self,
        mut req: ConsumerHeartbeat,
        topics: &dyn Topics,
    ) -> Result<ConsumerHeartbeatAnswer, GroupError> {
        self.check_group_id(&req.group_id)?;
        req.instance_id = req.instance_id.filter(|i| !i.is_empty());
        self.check_member_id(&req.member_id, req.instance_id.as_deref())?;
        let l = &self.limits;
        check_len(&req.client_id, l.max_id_bytes)?;
        check_len(&req.client_host, l.max_id_bytes)?;
        check_len(req.rack_id.as_deref().unwrap_or_default(), l.max_id_bytes)?;
        check_len(req.subscribed_regex.as_deref().unwrap_or_default(), l.max_id_bytes)?;
        let names = req.subscribed_names.iter().flatten();
        let total = names.fold(0usize, |n, t| n.saturating_add(t.len()).saturating_add(1));
        let owned = req.owned.iter().flatten();
        let total = owned.fold(total, |n, (_, ps)| {
            n.saturating_add(16).saturating_add(ps.len().saturating_mul(4))
        });
        if total > l.max_metadata_bytes {
            return Err(GroupError::TooLarge);
        }
        if req.member_epoch < -2 {
            return Err(GroupError::InvalidRequest(format!(
                "member epoch {} is not valid",
                req.member_epoch
            )));
        }
        if req.member_id.is_empty() {
            if req.member_epoch != 0 {
                return Err(GroupError::UnknownMemberId);
            }
            req.member_id = self.new_member_id(&req.client_id);
        }
        let member_id = req.member_id.clone();
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let now = inner.now();
        match inner.groups.get(&req.group_id) {
            Some(classic) if classic.state() != super::GroupState::Empty => return Err(GroupError::GroupIdNotFound),
            Some(_) if req.member_epoch == 0 => {
                inner.groups.remove(&req.group_id);
            }
            _ => {}
        }
        let count = inner.groups.len().saturating_add(inner.consumers.len());
        let group_id = req.group_id.clone();
        let (group, created) = match inner.consumers.entry(group_id.clone()) {
            Entry::Occupied(e) => (e.into_mut(), false),
            Entry::Vacant(_) if req.member_epoch != 0 => return Err(GroupError::UnknownMemberId),
            Entry::Vacant(_) if count >= self.limits.max_groups => return Err(GroupError::TooManyGroups),
            Entry::Vacant(e) => (e.insert(ConsumerGroup::new()), true),
        };
        let answer = group.heartbeat(req, member_id, topics, now, &self.limits);
        // A refused first join leaves no group behind.
        if created && answer.is_err() && group.is_empty() {
            inner.consumers.remove(&group_id);
        }
        answer
    }

    /// The consumer-protocol group `group_id`, if there is one.
    pub fn describe_consumer(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        let inner = self.lock();
        let g = inner.consumers.get(group_id)?;
        Some(ConsumerGroupDescription {
            group_id: group_id.to_string(),
            state: g.state(),
            epoch: g.epoch,
            assignment_epoch: g.epoch,
            assignor: g.assignor().to_string(),
            members: g.describe_members(),
        })
    }

    /// OffsetFetch v9+ by a member of a consumer-protocol group: the member
    /// must be known at its current epoch. Other groups, and requests
    /// without a member, pass.
    pub fn check_offset_fetch(&self, group_id: &str, member_id: Option<&str>, epoch: i32) -> Result<(), GroupError> {
        let inner = self.lock();
        let Some(g) = inner.consumers.get(group_id) else {
            return Ok(());
        };
        match member_id.filter(|m| !m.is_empty()) {
            None if epoch < 0 => Ok(()),
            None => Err(GroupError::UnknownMemberId),
            Some(m) => g.check_member(m, epoch),
        }
    }
}
